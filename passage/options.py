"""The settings of the text-model recipe (``passage.recipe``), as plain data.

No PyTorch here: the command line builds its options and help from these defaults before any
model code is imported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

AUTO_MONITOR = {"binary": "accuracy", "multiclass": "accuracy", "regression": "r2"}
MIN_FOR_VALIDATION = 20  # fewer training texts than this: no held-out split, no early stopping
# monitor='auto' watches the task's metric (accuracy, R^2) on at least this many validation
# texts; on fewer, one text moves accuracy by over 1%, and the smoother cost decides
MIN_FOR_METRIC = 100


@dataclass
class TextModelOptions:
    """Model size and training settings of the recipe.

    The defaults were chosen on validation splits of the training sets of IMDB (binary and
    1-10 rating) and TREC-6, never their test sets, and checked on the test sets by
    ``benchmarks/defaults.py`` (docs/benchmarks.md): a bidirectional GRU, max-pooled, blended
    with a TF-IDF linear term (``wide``), trained at lr 3e-3 on the first and last 128 tokens
    of long texts, in bfloat16 where the hardware runs it natively; once validation has chosen
    the epochs, the linear term's C and the blend, trained again on every text (``refit``)."""

    size: int = 128
    embedding_size: int = 128
    layer: str = "gru"
    direction: str = "bi"
    pool: str = "max"           # recurrent states -> document: 'last', 'max' or 'mean'
    wide: bool = True           # blend in a TF-IDF linear term over word uni- and bigrams
    n_epochs: int = 6
    batch_size: int = 64
    lr: float = 3e-3
    lr_schedule: str = "constant"  # or 'linear': falls to 0 over n_epochs
    min_df: int = 1
    max_features: int = 20000
    character: bool = False
    truncate: int | None = 256  # train on the first and last truncate/2 tokens of long texts
    validation_split: float = 0.1
    refit: bool = True          # after validation chose, train again on every text
    patience: int | None = 2
    monitor: str = "auto"       # validation score early stopping keeps; 'auto': accuracy for
    #                             classes, R^2 for regression (the cost under 100 held-out texts)
    seed: int | None = 0
    verbose: int = 0
    precision: str = "auto"     # 'fp32', 'bf16', 'fp16' or 'auto' (bf16 where it is native)

    def updated(self, **changes) -> TextModelOptions:
        """A copy with some settings changed; unknown names are an error."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)
