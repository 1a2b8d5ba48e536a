"""The request and response schema of the service, for the OpenAPI schema (``/openapi.json``).

The app reads and checks bodies itself (``passage.serve.requests``), so that size limits apply
before parsing and every error says what to change; these models only document the shapes.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

DESCRIPTION = """A Passage text model behind HTTP. `POST /predict` answers in the Hugging Face
text-classification shape (a list of `{label, score}`, best first, per text), `{value}` for a
regression model, and one `{entity, score, index, word, start, end}` per token for a tagger.
A single string in `inputs` gets one answer; a list gets a list of answers, in order. Errors
are `{"error": message, "status": code}`. `GET /` is a live page of the reading trace."""


class Parameters(BaseModel):
    top_k: int | None = Field(None, ge=1, description="labels per text, best first "
                              "(default: every label)")


class PredictRequest(BaseModel):
    inputs: str | list[str] = Field(..., description="one text, or a list of texts",
                                    examples=["A moving story and great acting."])
    parameters: Parameters | None = None


class TraceRequest(BaseModel):
    inputs: str = Field(..., description="one text", examples=["Not bad at all."])


class LabelScore(BaseModel):
    label: str | int = Field(..., description="a class, as the model file names it")
    score: float


class Value(BaseModel):
    value: float = Field(..., description="a regression model's prediction")


class TokenTag(BaseModel):
    entity: str = Field(..., description="the tag of this token")
    score: float
    index: int
    word: str
    start: int | None = Field(..., description="character offset in the text (null when the "
                              "token is not spelled as in the text)")
    end: int | None


class PredictResponse(BaseModel):
    """One answer (a single text) or a list of answers (a list of texts)."""

    model_config = {"json_schema_extra": {"examples": [[{"label": "pos", "score": 0.93},
                                                        {"label": "neg", "score": 0.07}]]}}


class TraceToken(BaseModel):
    token: str
    start: int | None
    end: int | None
    value: float = Field(..., description="the number coloured: p(label) or the value")
    rgb: list[int] = Field(..., description="its colour, red (low) - white - blue (high)")
    label: str | int | None = Field(None, description="the best label after this token")
    score: float | None = None


class Scale(BaseModel):
    low: float
    center: float
    high: float


class TraceResponse(BaseModel):
    tokens: list[TraceToken]
    meaning: str = Field(..., description="what value is, e.g. p('pos')")
    prediction: list[LabelScore] | float
    scale: Scale
    one_pass: bool
    character_tokens: bool


class Error(BaseModel):
    error: str = Field(..., description="what is wrong and what to change")
    status: int


def body(model: type[BaseModel]) -> dict:
    """``openapi_extra`` documenting a JSON request body."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}}}}


def answers(model: type[BaseModel]) -> dict:
    """The ``responses`` of a POST route: the answer and the errors."""
    shape = {"description": "the answer", "model": model}
    return {200: shape, 400: {"model": Error, "description": "not UTF-8 JSON"},
            413: {"model": Error, "description": "body too large"},
            422: {"model": Error, "description": "wrong fields, types, empty or too long texts"},
            503: {"model": Error, "description": "queue full: retry after Retry-After seconds"}}
