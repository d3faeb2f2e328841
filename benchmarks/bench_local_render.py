"""Local re-rendering on a long envelope: the studio's path for one edit, timed.

    python benchmarks/bench_local_render.py [--minutes 10 30] [--edits 5]

For each length it makes an envelope with an event every ~1.3 s, renders a stretch of it (as the
studio's last render leaves the sampler), then applies edits near the middle (an added event) and
times what the studio does for each: `affected_span` (which stretch changed) and `render_span` of
that stretch. It does so twice in the same run, alternating: as folai does it (the sampler's plan
cache: the last render's plan is reused and the new envelope planned once), and with the plans made
afresh for each call (three per edit, as before the eighth session). Prints the medians and their
ratio, and checks that both give the same samples.
"""

from __future__ import annotations

import argparse
import statistics
import time

from folai.commands._common import number


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=number(low=0.2), nargs="+", default=[10.0, 30.0],
                    help="lengths in minutes (at least 0.2: 12 s, room for the edit and the first render)")
    ap.add_argument("--edits", type=number(int, low=1), default=5, help="edits timed per length (at least 1)")
    args = ap.parse_args()
    import numpy as np

    from folai.envelope import Envelope
    from folai.studio.backends import affected_span
    from folai.synthesis.sampler import SamplerSynth

    kw = dict(prompt=None, references=[], pan=None, seed=0)
    print(f"{'minutes':>8} {'mode':>14} {'span s':>7} {'affected_span':>14} {'render_span':>12} {'total':>7}")
    for minutes in args.minutes:
        dur = minutes * 60.0
        rng = np.random.default_rng(0)
        env = Envelope.zeros(dur)
        for t in np.arange(0.5, dur - 1.0, 1.3):
            env = env.add_event(float(t + rng.uniform(-0.2, 0.2)), float(rng.uniform(0.1, 0.5)))
        res: dict[str, list] = {"cached plans": [], "fresh plans": []}
        for i in range(args.edits):
            new = env.add_event(dur / 2 + 0.37 * i, 0.4)
            for mode in ("cached plans", "fresh plans") if i % 2 == 0 else ("fresh plans", "cached plans"):
                synth = SamplerSynth()
                synth.render_span(env, dur / 2 - 2.0, dur / 2 + 2.0, duration=dur, progress=False, **kw)
                if mode == "fresh plans":  # every call plans again
                    synth._cached_plan = lambda e, n, p, r, pan, s, _s=synth: _s._plan(e, n, p, r, pan, s)
                t0 = time.perf_counter()
                span = affected_span(synth, env, new, dur, **kw)
                t1 = time.perf_counter()
                seg = synth.render_span(new, span[0], span[1], duration=dur, progress=False, **kw)
                t2 = time.perf_counter()
                res[mode].append((t1 - t0, t2 - t1, t2 - t0, span, seg))
            a, b = res["cached plans"][-1], res["fresh plans"][-1]
            if a[3] != b[3] or not np.array_equal(a[4], b[4]):
                raise SystemExit("the two modes gave different stretches or samples")
        for mode, rows in res.items():
            med = [statistics.median(r[j] for r in rows) for j in range(3)]
            span = rows[0][3]
            print(f"{minutes:8g} {mode:>14} {span[1] - span[0]:7.1f} {med[0]:14.3f} {med[1]:12.3f} {med[2]:7.3f}")
        c = statistics.median(r[2] for r in res["cached plans"])
        f = statistics.median(r[2] for r in res["fresh plans"])
        print(f"{minutes:8g}   cached / fresh: {c / f:.2f}x (same samples)")


if __name__ == "__main__":
    main()
