"""The report pages' one stylesheet and one script, constants shared by every page of a report.

The script never sees dataset text as code: it reads what it needs from the rows' `data-*`
attributes (escaped HTML) and from the page's `data-run`. Decisions live in the browser's
localStorage under the run's id, so every page of one run (the index and each review page)
shares them and a reviewer can close the page and come back; the download builds
`decisions.jsonl` in the page (a Blob), so nothing is fetched or sent anywhere.
"""

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
td.num,th.num{text-align:right}
.muted{color:#777}.note{background:#fff8e0;padding:6px 10px;border-left:3px solid #e0b000}
.charts{display:flex;flex-wrap:wrap;gap:1em}
.histogram .bar.clean{fill:#4a7fc1}.histogram .bar.review{fill:#d9534f}
.histogram .axis{stroke:#444}.histogram .tick{stroke:#444}.histogram .grid{stroke:#ddd}
.histogram .cut{stroke:#000;stroke-dasharray:4 3;stroke-width:2}
.histogram .bar.before{fill:#9aa5b1;fill-opacity:.7}
.histogram .bar.after{fill:#e07b00;fill-opacity:.25;stroke:#e07b00;stroke-width:1.5}
.histogram text{font-size:11px}
.media{display:flex;flex-wrap:wrap;gap:4px;max-width:540px}
.media img{max-width:256px;max-height:256px;display:block}
.missing{width:120px;min-height:60px;background:#eee;color:#a00;font-size:12px;padding:4px}
.turn{white-space:pre-wrap;word-break:break-word;max-width:640px;margin-bottom:4px}
.role{font-weight:bold;color:#555;margin-right:.4em}
.turn.low-turn{border-left:4px solid #c62828;padding-left:6px;background:#fdecea}
.turn-strip{display:flex;flex-wrap:wrap;gap:3px;align-items:center;margin-bottom:6px}
.turn-cell{display:inline-block;min-width:3.2em;padding:1px 4px;border:1px solid #9bbf9b;
  background:#e8f5e9;font-size:12px;text-align:center;border-radius:3px}
.turn-cell .turn-number{display:block;font-size:10px;color:#555}
.turn-cell.low{background:#f8d7da;border-color:#d9534f}
.turn-cell.first-low{background:#c62828;color:#fff;border:2px solid #7f0000;font-weight:bold}
.turn-cell.first-low .turn-number{color:#fff}
.turn-cell.kept{text-decoration:underline}
.origin{font-size:12px;color:#555;word-break:break-all;max-width:260px}
.filters{position:sticky;top:0;z-index:1;background:#fff;padding:6px 0;
  border-bottom:1px solid #ddd;display:flex;flex-wrap:wrap;gap:.6em;align-items:center}
.keys{font-size:12px;color:#555}
tr.sample.current{outline:3px solid #f0a000;outline-offset:-3px}
tr.decided-keep td{background:#eef8ee}tr.decided-drop td{background:#fbeeee}
.decide button{min-width:4.5em;margin:0 4px 4px 0;padding:3px 6px;cursor:pointer}
.decide button[aria-pressed=true].keep{background:#2e7d32;color:#fff}
.decide button[aria-pressed=true].drop{background:#c62828;color:#fff}
.decide input.decision-note{width:12em}
.counter{font-weight:bold}
#status{color:#a00}
"""

SCRIPT = """
(function () {
  var run = document.body.dataset.run;
  var storeKey = 'rmclean-decisions:' + run;
  var rows = Array.prototype.slice.call(document.querySelectorAll('tr.sample'));
  var $ = function (id) { return document.getElementById(id); };
  var search = $('filter-text'), source = $('filter-source'), reason = $('filter-reason');
  var decisionFilter = $('filter-decision'), sortBy = $('sort'), statusLine = $('status');
  var decisions = {}, history = [], current = null;

  rows.forEach(function (row, i) {
    row.dataset.i = String(i);
    row.dataset.text = (row.querySelector('.conversation').textContent + ' ' +
                        row.dataset.id).toLowerCase();
  });
  function keyOf(row) {
    return row.dataset.source + '\\n' + (row.dataset.origin || 'id:' + row.dataset.id);
  }
  function load() {
    try { return JSON.parse(localStorage.getItem(storeKey) || '{}') || {}; }
    catch (e) { return {}; }
  }
  function save() {
    try { localStorage.setItem(storeKey, JSON.stringify(decisions)); statusLine.textContent = ''; }
    catch (e) {
      statusLine.textContent = 'This browser could not store the decisions (' + e.name +
        '): download them now.';
    }
  }
  function entry(row, verdict, note) {
    var score = row.dataset.score;
    return {run: run, id: row.dataset.id, source: row.dataset.source,
            origin: row.dataset.origin || '', route: row.dataset.route, decision: verdict,
            note: note, score: score === '' ? null : Number(score),
            reason: row.dataset.reason || null};
  }
  function decide(row, verdict, note) {
    decisions = load();  // another page of this run may have decided meanwhile
    var key = keyOf(row), old = decisions[key] || null;
    history.push([key, old]);
    if (note === undefined) {
      note = old ? old.note : row.querySelector('input.decision-note').value;
    }
    if (!verdict && !note) { delete decisions[key]; }
    else { decisions[key] = entry(row, verdict, note); }
    save();
    refresh();
  }
  function undo() {
    var last = history.pop();
    if (!last) { return; }
    decisions = load();
    if (last[1]) { decisions[last[0]] = last[1]; } else { delete decisions[last[0]]; }
    save();
    refresh();
    var row = rows.filter(function (r) { return keyOf(r) === last[0]; })[0];
    if (row) { setCurrent(row); }
  }
  function paint(row) {
    var d = decisions[keyOf(row)], verdict = (d && d.decision) || '';
    row.dataset.decision = verdict;
    row.classList.toggle('decided-keep', verdict === 'keep');
    row.classList.toggle('decided-drop', verdict === 'drop');
    row.querySelector('button.keep').setAttribute('aria-pressed', String(verdict === 'keep'));
    row.querySelector('button.drop').setAttribute('aria-pressed', String(verdict === 'drop'));
    var note = row.querySelector('input.decision-note');
    if (document.activeElement !== note) { note.value = (d && d.note) || ''; }
  }
  function counters() {
    var flagged = {}, near = {}, all = 0;
    Object.keys(decisions).forEach(function (key) {
      var d = decisions[key];
      if (!d.decision) { return; }
      all += 1;
      var counts = d.route === 'review' ? flagged : near;
      counts[d.source] = (counts[d.source] || 0) + 1;
    });
    document.querySelectorAll('.decided-count').forEach(function (el) {
      el.textContent = String(flagged[el.dataset.source] || 0);
    });
    document.querySelectorAll('.near-decided-count').forEach(function (el) {
      el.textContent = String(near[el.dataset.source] || 0);
    });
    $('decided-total').textContent = String(all);
  }
  function refresh() { rows.forEach(paint); counters(); filter(); }
  function filter() {
    var text = search.value.trim().toLowerCase(), shown = 0;
    rows.forEach(function (row) {
      var wanted = decisionFilter.value, verdict = row.dataset.decision;
      var ok = (!source.value || row.dataset.source === source.value) &&
               (!reason.value || row.dataset.reason === reason.value) &&
               (!wanted || (wanted === 'undecided' ? !verdict : verdict === wanted)) &&
               (!text || row.dataset.text.indexOf(text) >= 0);
      row.hidden = !ok;
      if (ok && row.dataset.route === 'review') { shown += 1; }
    });
    document.querySelectorAll('.by-source').forEach(function (el) {
      el.hidden = !!source.value && el.dataset.source !== source.value;
    });
    $('visible-count').textContent = String(shown);
  }
  function order(row) {
    return [Number(row.dataset.rank), row.dataset.score === '' ? 0 : Number(row.dataset.score)];
  }
  function sortRows() {
    document.querySelectorAll('table.samples').forEach(function (table) {
      var how = sortBy.value === 'default' ? table.dataset.defaultSort : sortBy.value;
      // Below the cut the nearest are the highest scores; above it (near misses), the lowest.
      var sign = how === 'nearest' && table.dataset.side === 'below' ? -1 : 1;
      var body = table.tBodies[0];
      var sorted = Array.prototype.slice.call(body.rows).sort(function (a, b) {
        if (sortBy.value === 'default') { return Number(a.dataset.i) - Number(b.dataset.i); }
        var x = order(a), y = order(b);
        return sign * (x[0] - y[0] || x[1] - y[1]) || Number(a.dataset.i) - Number(b.dataset.i);
      });
      sorted.forEach(function (row) { body.appendChild(row); });
    });
  }
  function visibleRows() {
    return Array.prototype.slice.call(document.querySelectorAll('tr.sample'))
      .filter(function (row) { return !row.hidden && !row.closest('[hidden]'); });
  }
  function setCurrent(row) {
    if (current) { current.classList.remove('current'); }
    current = row;
    if (row) { row.classList.add('current'); row.scrollIntoView({block: 'nearest'}); }
  }
  function step() {
    var list = visibleRows();
    if (!list.length) { return; }
    var at = list.indexOf(current);
    setCurrent(list[Math.min(at + 1, list.length - 1)]);
  }
  function download() {
    decisions = load();
    var lines = Object.keys(decisions).sort().map(function (key) { return decisions[key]; })
      .filter(function (d) { return d.decision; })
      .map(function (d) { return JSON.stringify(d); });
    if (!lines.length) { statusLine.textContent = 'No decisions yet.'; return; }
    var blob = new Blob([lines.join('\\n') + '\\n'], {type: 'application/x-ndjson'});
    var link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = 'decisions.jsonl';
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  }

  rows.forEach(function (row) {
    row.addEventListener('click', function () { setCurrent(row); });
    ['keep', 'drop'].forEach(function (verdict) {
      row.querySelector('button.' + verdict).addEventListener('click', function (event) {
        event.stopPropagation();
        setCurrent(row);
        decide(row, row.dataset.decision === verdict ? '' : verdict);
      });
    });
    var note = row.querySelector('input.decision-note');
    note.addEventListener('change', function () {
      decide(row, row.dataset.decision || '', note.value);
    });
    note.addEventListener('keydown', function (event) {
      if (event.key === 'Enter' || event.key === 'Escape') { note.blur(); }
    });
  });
  document.addEventListener('keydown', function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var target = event.target;
    if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) { return; }
    if (event.key === 'j' || event.key === 'n') { step(); }
    else if (event.key === 'k' || event.key === 'd') {
      var row = current && !current.hidden ? current : visibleRows()[0];
      if (!row) { return; }
      setCurrent(row);
      decide(row, event.key === 'k' ? 'keep' : 'drop');
      step();
    }
    else if (event.key === 'u') { undo(); }
    else { return; }
    event.preventDefault();
  });
  [search, source, reason, decisionFilter].forEach(function (el) {
    el.addEventListener('input', filter);
    el.addEventListener('change', filter);
  });
  sortBy.addEventListener('change', sortRows);
  $('download').addEventListener('click', download);
  window.addEventListener('storage', function (event) {
    if (event.key === storeKey) { decisions = load(); refresh(); }
  });
  decisions = load();
  sortRows();
  refresh();
})();
"""
