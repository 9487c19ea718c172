"""What limits the Dice of a network that segments discs on a coarser grid than the scan's.

The resolution ceiling: each subject's true labels are taken to the network's in-plane grid
(``--pixel-mm``, the ``small`` preset's 2.5 mm) in three ways and brought back to the scan's grid
as the segmenter brings its output back (bilinear, align_corners=False, threshold 0.5), then scored
with MONAI's Dice against the truth (mean over subjects):

- ``nearest``: nearest-neighbour labels (what the training used before: one fine pixel of each
  2 x 2 block, half a fine pixel off the images' centred grid);
- ``area share``: the disc share of each coarse pixel (a perfect soft prediction);
- ``area >= 0.5``: that share thresholded (a perfect hard prediction on the coarse grid).

    python packages/medseg/benchmarks/ivd_dice_ceiling.py SPINE_DIR [--pixel-mm 2.5]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from convsuite.medseg.data.ivdm3seg import (
    canonical_spacing,
    find_subjects,
    read_subject,
    to_canonical,
)
from convsuite.medseg.ivd_evaluate import _surface_scores
from convsuite.medseg.ivd_train import label_grid
from convsuite.medseg.models.volume_segmenter import grid_size

torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="IVDM3Seg-layout folder with labelled subjects")
    parser.add_argument("--pixel-mm", type=float, default=2.5, help="network's pixel size, mm")
    args = parser.parse_args()
    dice: dict[str, list[float]] = {"nearest": [], "area share": [], "area >= 0.5": []}
    for folder in find_subjects(args.root):
        subject = read_subject(folder)
        if subject.labels is None:
            continue
        truth, _ = to_canonical(subject.labels, subject.affine)
        spacing = canonical_spacing(subject.affine)
        labels = torch.from_numpy(np.ascontiguousarray(truth > 0)).float()[:, None]
        plane = tuple(labels.shape[-2:])
        size = grid_size(plane, spacing[1:], args.pixel_mm)
        coarse = {
            "nearest": F.interpolate(labels, size=size, mode="nearest"),
            "area share": F.interpolate(labels, size=size, mode="area"),
            "area >= 0.5": label_grid(truth, size).float()[:, None],  # the training targets
        }
        for name, small in coarse.items():
            back = F.interpolate(small, size=plane, mode="bilinear", align_corners=False)
            dice[name].append(_surface_scores(back[:, 0].numpy() > 0.5, truth > 0, spacing)[0])
    print(f"Dice ceiling of {args.pixel_mm} mm labels brought back to the scan's grid")
    for name, values in dice.items():
        print(f"{name:<14} mean Dice {np.mean(values):.4f} over {len(values)} subjects")


if __name__ == "__main__":
    main()
