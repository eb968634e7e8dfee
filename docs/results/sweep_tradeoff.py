"""Draws docs/results/sweep_tradeoff.png from the sweep's model_dirs:

  python docs/results/sweep_tradeoff.py OUT.png RUN_DIR...

Each RUN_DIR holds the eval.json bigbigan-train wrote; its name labels the
point (docs/experiments.md, Q14 and Q15: lr* = latent regression with the
batch's moments, lm* = with the moving statistics, cyc* = the cycle term,
with "real" in the name also the latent regression with the real rows'
moments; lr0_* = the paper's objective).
"""

import json
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

KINDS = (("lr0_", "paper objective (λ = 0)", "black", "*"),
         ("real", "cycle term + latent regression, real rows' moments",
          "tab:red", "D"),
         ("lr", "latent regression, batch moments", "tab:blue", "o"),
         ("lm", "latent regression, moving statistics", "tab:orange", "s"),
         ("cyc", "cycle term", "tab:green", "^"))


def main(out, run_dirs):
  fig, ax = plt.subplots(figsize=(6.4, 5.2))
  labelled = set()
  placed = []
  for run_dir in run_dirs:
    name = os.path.basename(os.path.normpath(run_dir))
    with open(os.path.join(run_dir, "eval.json")) as f:
      figures = json.load(f)
    x = figures["sample_fid_judge"]
    y = 100 * figures["reconstruction_judge_same_class"]
    prefix, label, colour, marker = next(
        k for k in KINDS if name.startswith(k[0])
        or (k[0] == "real" and "real" in name))
    ax.scatter(x, y, c=colour, marker=marker, s=90 if marker == "*" else 45,
               label=None if prefix in labelled else label, zorder=3)
    labelled.add(prefix)
    # Points closer than this to an earlier one get their label lower.
    crowded = sum(1 for px, py in placed if abs(px - x) < 1.5
                  and abs(py - y) < 2.5)
    placed.append((x, y))
    ax.annotate(name, (x, y), textcoords="offset points",
                xytext=(5, 3 - 11 * crowded), fontsize=7)
  ax.set_xlabel("sample FID (judge features; lower is better)")
  ax.set_ylabel("reconstructions keeping the class (judge), %")
  ax.set_title("Quickstart config, 1,200 steps: inversion against sample "
               "quality", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
  fig.tight_layout()
  fig.savefig(out, dpi=110)


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2:])
