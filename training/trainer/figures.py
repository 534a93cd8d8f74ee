"""The confusion matrix as an SVG image, with the standard library only.

MLflow's artifact viewer shows SVG files like PNG ones; drawing this one grid by hand
spares the training image matplotlib and its font and image libraries (about 75 MB).
"""

from __future__ import annotations

from html import escape

CELL = 64
MARGIN = 110  # left, for the row labels
TOP = 40  # for the title


def _shade(count: int, top: int) -> tuple[str, str]:
    """A blue as dark as the count is high, and a text colour readable on it."""
    share = count / top if top else 0.0
    r, g, b = (int(247 - share * (247 - v)) for v in (8, 48, 107))
    return f"rgb({r},{g},{b})", "#ffffff" if share > 0.5 else "#08306b"


def confusion_matrix_svg(cm, labels: list[str], title: str) -> str:
    """`cm[i][j]`: rows of true class i predicted as class j (sklearn's layout)."""
    n = len(labels)
    width = MARGIN + n * CELL + 20
    height = TOP + n * CELL + 50
    top = max((int(v) for row in cm for v in row), default=0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="13">',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="15">{escape(title)}</text>',
        f'<text x="{MARGIN + n * CELL / 2}" y="{height - 8}" text-anchor="middle">'
        "Predicted label</text>",
        f'<text transform="translate(18,{TOP + n * CELL / 2}) rotate(-90)" '
        'text-anchor="middle">True label</text>',
    ]
    for i, row in enumerate(cm):
        y = TOP + i * CELL
        parts.append(
            f'<text x="{MARGIN - 8}" y="{y + CELL / 2 + 4}" text-anchor="end">'
            f"{escape(str(labels[i]))}</text>"
        )
        for j, value in enumerate(row):
            x = MARGIN + j * CELL
            fill, ink = _shade(int(value), top)
            parts.append(
                f'<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="{fill}" '
                'stroke="#ffffff"/>'
                f'<text x="{x + CELL / 2}" y="{y + CELL / 2 + 5}" text-anchor="middle" '
                f'fill="{ink}">{int(value)}</text>'
            )
    for j, label in enumerate(labels):
        parts.append(
            f'<text x="{MARGIN + j * CELL + CELL / 2}" y="{TOP + n * CELL + 18}" '
            f'text-anchor="middle">{escape(str(label))}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
