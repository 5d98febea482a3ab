"""The demo reward network: a tiny CoordConv media encoder plus bag-of-words text, scored per
answer word so that a single contradicting word (a wrong colour, count or direction) can pull
the whole reward down.

Every operation is per sample (no batch norm, masked pooling), so a sample's score does not
depend on its batch-mates or on padding.
"""

from __future__ import annotations

import torch
from torch import nn

from .features import MAX_COUNT, STATS


def _coords(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    ys = torch.linspace(-1.0, 1.0, height, dtype=like.dtype, device=like.device)
    xs = torch.linspace(-1.0, 1.0, width, dtype=like.dtype, device=like.device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y]).expand(like.shape[0], 2, height, width)


DIRECTIONS = ("right", "left", "down", "up")
MOVED = 0.15  # centroid travel (in -1..1 image coordinates) that counts as motion


def word_overlap(
    question: torch.Tensor, answer: torch.Tensor, q_weight: torch.Tensor, a_weight: torch.Tensor
) -> torch.Tensor:
    """(B, 2): weighted share of answer words found in the question and of question words found
    in the answer (token ids, 0 = padding; weights (B, Lq) / (B, La) in 0..1 say how much each
    word counts as content).

    An answer on the question's subject repeats its content words; an answer borrowed from
    another question shares only function words ("how", "with", "the"). Unweighted, those words
    make the two cases overlap, which left text-only samples (where nothing else tells them
    apart) scored on a scale of their own; learned weights discount them."""
    q_mask, a_mask = question > 0, answer > 0
    same = (answer[:, :, None] == question[:, None, :]) & a_mask[:, :, None] & q_mask[:, None, :]
    q_weight, a_weight = q_weight * q_mask, a_weight * a_mask
    a_share = (same.any(2).float() * a_weight).sum(1) / a_weight.sum(1).clamp(min=1e-6)
    q_share = (same.any(1).float() * q_weight).sum(1) / q_weight.sum(1).clamp(min=1e-6)
    return torch.stack([a_share, q_share], dim=1)


class FrameEncoder(nn.Module):
    """(N, 3, S, S) uint8 frames + background colours -> (N, 2 * channels) features.

    Inputs are RGB, RGB minus the background, and x/y coordinate channels; the output is the
    SUM over positions (so it grows with the number of shapes; counting is a linear read-out)
    concatenated with the MAX (presence of a colour or shape regardless of how many).
    """

    def __init__(self, channels: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(8, 12, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(12, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 24, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Conv2d(24 + 2, channels, 1)
        self.out_dim = 2 * channels

    def forward(self, frames: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
        x = frames.float() / 255.0
        diff = x - background[:, :, None, None]
        h = self.body(torch.cat([x, diff, _coords(x.shape[2], x.shape[3], x)], dim=1))
        h = torch.relu(self.head(torch.cat([h, _coords(h.shape[2], h.shape[3], h)], dim=1)))
        # Sum scaled by 1/64 keeps magnitudes near 1 for a typical shape at 16x16 resolution.
        return torch.cat([h.sum(dim=(2, 3)) / 64.0, h.amax(dim=(2, 3))], dim=1)


class DemoRewardNet(nn.Module):
    def __init__(self, buckets: int = 8192, dim: int = 32, hidden: int = 64, channels: int = 32):
        super().__init__()
        self.frames = FrameEncoder(channels)
        media_in = 2 * (self.frames.out_dim + STATS + MAX_COUNT + 1) + 3 + len(DIRECTIONS)
        self.media = nn.Sequential(nn.Linear(media_in, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(0.3)
        self.embed = nn.Embedding(buckets, dim, padding_idx=0)
        self.question = nn.Linear(dim, dim)
        self.to_media = nn.Linear(dim, dim)
        self.to_question = nn.Linear(dim, dim)
        self.token = nn.Sequential(nn.Linear(5 * dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.pool = nn.Linear(4, 1)
        # How much a word counts as content when matching answer to question (see word_overlap).
        self.content = nn.Linear(dim, 1)
        self.glob = nn.Sequential(nn.Linear(3 * dim + 2, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def encode_media(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """kind (B,), frames (B, 2, 3, S, S), background (B, 2, 3), counts (B, 2) and stats
        (B, 2, STATS) -> (B, dim).

        A video is [f(first), f(last) - f(first)] so the direction of motion is a difference of
        coordinate-weighted sums; an image is [f(image), 0]; text-only has zero frames."""
        kind, frames, counts = batch["kind"], batch["frames"], batch["counts"]
        b = frames.shape[0]
        f = self.frames(frames.flatten(0, 1), batch["background"].flatten(0, 1)).view(b, 2, -1)
        # Dropout on the learned CNN part only: the frame statistics carry the exact facts, and
        # without it the CNN memorises per-image quirks that shift a sample's absolute score.
        f = torch.cat([self.drop(f), batch["stats"]], dim=2)
        is_video = (kind == 2).float()[:, None]
        is_media = (kind > 0).float()[:, None]
        first = f[:, 0] * is_media
        delta = (f[:, 1] - f[:, 0]) * is_video
        count_hot = nn.functional.one_hot(counts.clamp(0, MAX_COUNT), MAX_COUNT + 1).float()
        count_hot = count_hot * torch.stack([is_media, is_video], dim=1)
        kind_hot = nn.functional.one_hot(kind, 3).float()
        # Explicit direction of the foreground centroid's travel, so "left"/"up" words meet a
        # sharp input rather than a small difference the MLP must learn to threshold.
        moved = batch["stats"][:, 1, 4:6] - batch["stats"][:, 0, 4:6]  # (dx, dy) in -2..2
        direction = (
            torch.stack(
                [
                    moved[:, 0] > MOVED,
                    moved[:, 0] < -MOVED,
                    moved[:, 1] > MOVED,
                    moved[:, 1] < -MOVED,
                ],
                dim=1,
            ).float()
            * is_video
        )
        return self.media(
            torch.cat([first, delta, kind_hot, count_hot.flatten(1), direction], dim=1)
        )

    def score_text(
        self, media: torch.Tensor, question: torch.Tensor, answer: torch.Tensor
    ) -> torch.Tensor:
        """(B, dim) media, (B, Lq) / (B, La) token ids (0 = padding) -> (B,) raw rewards."""
        q_mask = (question > 0).float()[..., None]
        q_tokens = self.embed(question)
        q = (q_tokens * q_mask).sum(1) / q_mask.sum(1).clamp(min=1.0)
        q = torch.tanh(self.question(q))
        a_mask = answer > 0
        tokens = self.embed(answer)
        m_t = self.to_media(media)[:, None].expand_as(tokens)
        q_t = self.to_question(q)[:, None].expand_as(tokens)
        pair = torch.cat(
            [
                tokens,
                media[:, None].expand_as(tokens),
                q[:, None].expand_as(tokens),
                tokens * m_t,
                tokens * q_t,
            ],
            dim=-1,
        )
        s = self.token(pair).squeeze(-1)  # (B, La) per-word compatibility
        maskf = a_mask.float()
        n = maskf.sum(1)
        has = (n > 0).float()
        mean = (s * maskf).sum(1) / n.clamp(min=1.0)
        big = torch.finfo(s.dtype).max / 4
        low = torch.where(a_mask, s, torch.full_like(s, big)).amin(1) * has
        high = torch.where(a_mask, s, torch.full_like(s, -big)).amax(1) * has
        # Soft minimum: -log(mean(exp(-s))) over real tokens, a smoother version of `low`.
        neg = torch.where(a_mask, -s, torch.full_like(s, -big))
        soft = -(torch.logsumexp(neg, 1) - torch.log(n.clamp(min=1.0))) * has
        a_mean = (tokens * maskf[..., None]).sum(1) / n.clamp(min=1.0)[:, None]
        pooled = self.pool(torch.stack([mean, low, high, soft], dim=1)).squeeze(1)
        overlap = word_overlap(
            question,
            answer,
            torch.sigmoid(self.content(q_tokens)).squeeze(-1),
            torch.sigmoid(self.content(tokens)).squeeze(-1),
        )
        return pooled + self.glob(torch.cat([media, q, a_mean, overlap], dim=1)).squeeze(1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        media = self.encode_media(batch)
        return self.score_text(media, batch["question"], batch["answer"])
