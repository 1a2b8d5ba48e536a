"""Predict with an exported Passage model using only onnxruntime and tokenizers (no torch).

    passage export model.passage --out model.onnx     # writes model.onnx + model.tokenizer.json
    python examples/onnx_predict.py model.onnx "A wonderful film." "Dull and far too long."

Prints one JSON line per text: the label (or value) and the model's outputs. The same two files
work from any language with onnxruntime and tokenizers bindings: tokenize, pad the ids on the
right (any pad value), pass the ids and the lengths, read ``outputs``.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def load(onnx_path: str):
    """(session, tokenizer, metadata) of an exported model and the tokenizer beside it."""
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(os.path.splitext(onnx_path)[0] + ".tokenizer.json")
    meta = session.get_modelmeta().custom_metadata_map
    return session, tokenizer, meta


def predict(session, tokenizer, texts: list[str]) -> np.ndarray:
    """The model's outputs for ``texts``: (texts, units), as Passage's ``model.predict``."""
    encodings = tokenizer.encode_batch(texts)  # padded on the right with PAD (0)
    width = max((len(e.ids) for e in encodings), default=0)
    ids = np.zeros((len(texts), width), np.int64)
    lengths = np.zeros(len(texts), np.int64)
    for i, e in enumerate(encodings):
        n = sum(e.attention_mask)
        ids[i, :n], lengths[i] = e.ids[:n], n
    return session.run(["outputs"], {"ids": ids, "lengths": lengths})[0]


def describe(outputs: np.ndarray, meta: dict) -> list[dict]:
    """A label per row from the task and labels in the model's metadata."""
    labels, task = json.loads(meta.get("labels", "null")), meta.get("task")
    rows = []
    for out in outputs:
        row = {"outputs": [round(float(v), 6) for v in out]}
        if task == "binary" and labels:
            row["label"] = labels[int(out[-1] > 0.5)]
        elif task == "multiclass" and labels:
            row["label"] = labels[int(np.argmax(out))]
        elif task == "regression":
            row["value"] = float(out[0])
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model.onnx written by 'passage export'")
    parser.add_argument("texts", nargs="+", help="texts to predict")
    args = parser.parse_args()
    session, tokenizer, meta = load(args.model)
    if meta.get("output") != "per_example" or meta.get("input") != "ids":
        raise SystemExit("this example reads text classifiers and regressors; see "
                         "docs/export.md for taggers")
    for text, row in zip(args.texts, describe(predict(session, tokenizer, args.texts), meta),
                         strict=True):
        print(json.dumps({"text": text, **row}))


if __name__ == "__main__":
    main()
