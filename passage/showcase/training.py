"""Build and train the standard text model: Embedding -> recurrent layer -> Dense output.

The output follows the task: binary -> Dense(1, sigmoid) + bce, multiclass -> Dense(k, softmax)
+ cce, regression -> Dense(1, linear) + mse. A fraction of the training texts is held out for
early stopping; the returned model carries its tokenizer and its label coding (``extra_``), so
``passage.io.save(model, path)`` writes one file that predicts class names from raw text.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from passage.layers import Dense, Embedding, GatedRecurrent, LstmRecurrent, SimpleRecurrent
from passage.models import RNN
from passage.preprocessing import Tokenizer, check_texts
from passage.showcase.labels import LabelCoding
from passage.updates import Adam

RECURRENT = {"gru": GatedRecurrent, "lstm": LstmRecurrent, "simple": SimpleRecurrent}
OUTPUTS = {"binary": ("sigmoid", "bce"), "multiclass": ("softmax", "cce"),
           "regression": ("linear", "mse")}
MIN_FOR_VALIDATION = 10  # fewer training texts than this: no held-out split, no early stopping


@dataclass
class TrainOptions:
    """Model size and training settings (defaults: the 2015 example model, 5 epochs)."""

    size: int = 128
    embedding_size: int = 128
    layer: str = "gru"
    direction: str = "forward"
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    min_df: int = 2
    max_features: int = 20000
    character: bool = False
    validation_split: float = 0.1
    patience: int | None = 2
    seed: int | None = 0
    verbose: int = 0
    precision: str = "fp32"  # or 'bf16' / 'fp16': mixed-precision training (see RNN)

    def updated(self, **changes) -> TrainOptions:
        """A copy with some settings changed; unknown names are an error."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        return replace(self, **changes)


def build_model(coding: LabelCoding, tokenizer: Tokenizer, options: TrainOptions) -> RNN:
    """An untrained RNN for the task, with the tokenizer attached."""
    if options.layer not in RECURRENT:
        raise ValueError(f"layer must be one of {', '.join(RECURRENT)}; got {options.layer!r}")
    activation, cost = OUTPUTS[coding.task]
    layers = [Embedding(options.embedding_size, tokenizer.n_features),
              RECURRENT[options.layer](options.size, direction=options.direction),
              Dense(coding.n_outputs, activation)]
    return RNN(layers, cost, updater=Adam(lr=options.lr), verbose=options.verbose,
               seed=options.seed, tokenizer=tokenizer, precision=options.precision)


def train_model(texts, labels, task: str = "auto", options: TrainOptions | None = None,
                coding: LabelCoding | None = None) -> RNN:
    """Fit a tokenizer and an RNN on raw texts and labels; returns the trained model.

    coding: the label coding to use (default: fitted on ``labels`` with ``task``). The model's
    ``extra_`` holds it, and ``history_`` / ``best_epoch_`` tell how validation went.
    """
    options = options or TrainOptions()
    texts = check_texts(texts)
    labels = list(labels)
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels: they must match")
    coding = coding or LabelCoding.fit(labels, task)
    y = coding.encode(labels)
    tokenizer = Tokenizer(max_features=options.max_features, min_df=options.min_df,
                          character=options.character)
    tokens = tokenizer.fit_transform(texts)
    model = build_model(coding, tokenizer, options)
    validate = options.validation_split > 0 and len(texts) >= MIN_FOR_VALIDATION
    model.fit(tokens, y, batch_size=options.batch_size, n_epochs=options.epochs,
              validation_split=options.validation_split if validate else 0.0,
              patience=options.patience if validate else None)
    model.extra_ = coding.to_dict()
    return model
