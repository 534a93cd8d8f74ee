"""The confusion matrix image (unit)."""

import xml.etree.ElementTree as ET

from trainer.figures import confusion_matrix_svg

NS = "{http://www.w3.org/2000/svg}"


def test_the_confusion_matrix_is_an_svg_with_every_count_and_label():
    cm = [[12, 0, 1], [0, 9, 3], [2, 0, 15]]
    svg = confusion_matrix_svg(cm, ["setosa", "versi<color>", "virginica"], "Confusion")
    root = ET.fromstring(svg)  # noqa: S314 (our own output) well-formed, labels escaped
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert [int(t) for t in texts if t.isdigit()] == [12, 0, 1, 0, 9, 3, 2, 0, 15]
    assert texts.count("versi<color>") == 2  # a row label and a column label
    assert {"Confusion", "Predicted label", "True label"} <= set(texts)


def test_the_darkest_cell_is_the_highest_count():
    svg = confusion_matrix_svg([[1, 7], [0, 3]], ["a", "b"], "t")
    root = ET.fromstring(svg)  # noqa: S314 (our own output)
    cells = [r.get("fill") for r in root.iter(f"{NS}rect")][1:]  # after the background
    assert cells[1] == "rgb(8,48,107)" and cells[2] == "rgb(247,247,247)"
