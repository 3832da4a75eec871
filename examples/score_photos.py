"""Score your own photos against a sentence with a trained MIA run.

    python examples/score_photos.py --run runs/demo/mia \
        --text "a man in a black striped shirt, red trousers and a black backpack" \
        photo1.jpg photo2.png ...

Prints the photos ranked by the fused score sF with its parts sG, sR, sL, and for the best
one why it matched: the stripe the sentence weighted most and each noun phrase's stripe.
"""

from __future__ import annotations

import argparse

import mia


def main(argv: list[str] | None = None) -> list[tuple[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a trained run directory")
    parser.add_argument("--text", required=True, help="the description")
    parser.add_argument("photos", nargs="+", help="image files")
    args = parser.parse_args(argv)

    model = mia.load(args.run)
    images = model.encode_images(args.photos)
    scores = model.score(images, model.encode_texts([args.text]))
    ranked = sorted(zip(args.photos, scores["sF"][0].tolist()), key=lambda p: -p[1])
    for rank, (photo, s_f) in enumerate(ranked, 1):
        i = args.photos.index(photo)
        print(f"{rank:>3}. sF {s_f:.4f} (sG {scores['sG'][0, i]:.3f} sR {scores['sR'][0, i]:.3f}"
              f" sL {scores['sL'][0, i]:.3f})  {photo}")
    why = model.explain(ranked[0][0], args.text)
    stripe = max(range(len(why["stripes"])), key=lambda k: why["stripes"][k])
    print(f"best match: the sentence weighs stripe {stripe + 1} (of {len(why['stripes'])}, "
          "top to bottom) most; phrases -> stripes: "
          + "; ".join(f"{p} -> {s + 1}" for p, s in why["phrase_to_stripe"].items()))
    return ranked


if __name__ == "__main__":
    main()
