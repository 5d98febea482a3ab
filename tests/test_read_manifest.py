import io
import json

import pytest

from transforms.core.record import ErrorRecord, Sample
from transforms.io.llava_manifests import ManifestError, iter_json_array, read_manifest

GOOD = {
    "id": "a1",
    "image": "images/1.jpeg",
    "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}],
    "original_caption": "cap",
    "url": "https://x",
}


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_array_elements_are_streamed_whatever_the_chunk_size(chunk):
    records = [GOOD, {"n": 12345}, [1, "]", {"x": "}"}], 67890, "s"]
    text = json.dumps(records)
    assert list(iter_json_array(io.StringIO(text), chunk_chars=chunk)) == records


@pytest.mark.parametrize(
    "text", ['[{"a": 1}, {"a": 2', '[{"a": 1} {"a": 2}]', '{"a": 1}', '[{"a": 1},']
)
def test_malformed_arrays_raise(text):
    with pytest.raises(ManifestError):
        list(iter_json_array(io.StringIO(text), chunk_chars=4))


def test_records_become_samples_with_unknown_fields_kept(tmp_path):
    path = tmp_path / "m.json"
    text_only = {"idx": "t1", "conversations": GOOD["conversations"], "weight": 2}
    path.write_text(json.dumps([GOOD, text_only]))
    first, second = list(read_manifest(str(path), "src"))
    assert isinstance(first, Sample) and first.id == "a1" and first.source == "src"
    assert [(m.kind, m.path) for m in first.media] == [("image", "images/1.jpeg")]
    assert first.fields == {"original_caption": "cap", "url": "https://x"}
    assert first.origin.endswith("m.json[0]")
    assert second.id == "t1" and second.is_text_only
    assert second.fields == {"weight": 2}
    assert second.layout.id_key == "idx"
    assert second.layout.keys == ("idx", "conversations", "weight")


def test_truncated_array_keeps_records_before_the_break(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps([GOOD, GOOD])[:-30])
    items = list(read_manifest(str(path), "src"))
    assert isinstance(items[0], Sample)
    assert isinstance(items[-1], ErrorRecord) and items[-1].reason == "malformed_json"
    assert "after 1 records" in items[-1].detail


def test_jsonl_bad_line_is_one_error_and_the_rest_survive(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{not json\n" + json.dumps({**GOOD, "id": "a2"}) + "\n")
    items = list(read_manifest(str(path), "src"))
    assert [type(i).__name__ for i in items] == ["Sample", "ErrorRecord", "Sample"]
    assert items[1].origin.endswith("m.jsonl:2") and "line 2" in items[1].detail


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"conversations": GOOD["conversations"]}, "missing_id"),
        ({"id": "x"}, "missing_conversations"),
        ({"id": "x", "conversations": [{"from": "human", "value": 3}]}, "bad_conversation"),
        ({"id": "x", "conversations": [{"value": "hi"}]}, "bad_conversation"),
        ({"id": "x", "image": 5, "conversations": GOOD["conversations"]}, "bad_media_path"),
        ([1, 2], "not_an_object"),
    ],
)
def test_malformed_records_are_errors_with_a_reason(tmp_path, record, reason):
    path = tmp_path / "m.json"
    path.write_text(json.dumps([record]))
    (item,) = list(read_manifest(str(path), "src"))
    assert isinstance(item, ErrorRecord) and item.reason == reason and item.stage == "read"


def test_a_non_utf8_record_is_one_error_and_its_neighbours_survive(tmp_path):
    path = tmp_path / "m.json"
    good = json.dumps(GOOD).encode()
    path.write_bytes(b"[" + good + b', {"id": "bad\xff\xfe", "conversations": []}, ' + good + b"]")
    items = list(read_manifest(str(path), "src"))
    assert [type(i).__name__ for i in items] == ["Sample", "ErrorRecord", "Sample"]
    assert items[1].reason == "not_utf8" and items[1].origin.endswith("m.json[1]")
