"""Draws bench/compare's chart: per client, throughput (msg/s) and p99 latency of every case, Sluice and Kafka side
by side, with the ratio Sluice/Kafka over each pair. Run by bench/compare with the matplotlib of .cache/plot-venv:

    python plot_compare.py compare.json compare.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"sluice": "#1f77b4", "kafka": "#d62728"}
NAMES = {"sluice": "Sluice", "kafka": "Apache Kafka"}


def short_label(c: dict) -> str:
    kind = {"produce": "prod", "consume-cold": "cons cold", "consume-warm": "cons warm", "latency": "fixed rate"}
    acks = f" a={c['acks']}" if c["kind"] == "produce" else ""
    size = "1K" if c["size"] == 1024 else f"{c['size']}B"
    return f"{kind.get(c['kind'], c['kind'])}{acks}\np{c['partitions']} {size}"


def bars(ax, cases: list[dict], figure: str, title: str, ylabel: str, higher_is_better: bool) -> None:
    width = 0.4
    xs = range(len(cases))
    for i, broker in enumerate(("sluice", "kafka")):
        values = [c["median"].get(broker, {}).get(figure) or 0 for c in cases]
        ax.bar([x + (i - 0.5) * width for x in xs], values, width, label=NAMES[broker], color=COLORS[broker])
    for x, c in zip(xs, cases):
        r = c["ratio"].get(figure)
        top = max(c["median"].get(b, {}).get(figure) or 0 for b in ("sluice", "kafka"))
        if r is not None and top > 0:
            good = r >= 1 if higher_is_better else r <= 1
            ax.annotate(f"{r:.2f}", (x, top), ha="center", va="bottom", fontsize=7,
                        color="darkgreen" if good else "black")
    ax.set_yscale("log")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([short_label(c) for c in cases], fontsize=7, rotation=90)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)


def main() -> int:
    json_path, png_path = sys.argv[1], sys.argv[2]
    results = json.load(open(json_path))
    summary = results["summary"]
    clients = sorted({c["client"] for c in summary}, key=lambda n: n != "rdbench")
    fig, axes = plt.subplots(len(clients), 2, figsize=(18, 6 * len(clients)), squeeze=False,
                             gridspec_kw={"width_ratios": [2, 1]})
    for row, client in enumerate(clients):
        mine = [c for c in summary if c["client"] == client]
        tput = [c for c in mine if c["kind"] != "latency"]
        lat = [c for c in mine if any(c["median"].get(b, {}).get("p99_ms") for b in ("sluice", "kafka"))]
        lat.sort(key=lambda c: c["kind"] != "latency")
        bars(axes[row][0], tput, "msgs_per_s", f"{client}: throughput (median msg/s; label = Sluice/Kafka)",
             "messages/s (log)", True)
        bars(axes[row][1], lat, "p99_ms",
             f"{client}: p99 latency (ms; fixed rate, and produce at saturation)", "ms (log)", False)
    env = results["env"]
    m = env["machine"]
    fig.suptitle(f"Sluice vs Apache Kafka, {env['date']}, {env['mode']} run: nproc={m['nproc']} {m['cpu_model']}, "
                 f"Linux {m['kernel']}, {m['mem_gib']} GiB", fontsize=11)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    return 0


if __name__ == "__main__":
    sys.exit(main())
