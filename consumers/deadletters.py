"""Decoding alert records and turning what cannot be processed into `DeadLetter`s with a reason.

Reasons (the `reason` field and the `itff_consumer_dead_letters_total{reason}` label):

- `undecodable` (stage `decode`): the value is not UTF-8 JSON;
- `invalid_bar` (`validate`): JSON, but not a valid `Alert` (missing field, bad price, high < low);
- `out_of_range` (`validate`): the bar time is outside the plausible range at the alert's
  `received_at` (`bot.contracts.bars`: future skew, horizon); nothing stored;
- `revision_refused` (`validate`): the alert changes a stored bar that is no longer among the last
  `ITFF_REVISION_WINDOW_BARS` of its symbol and interval; history is not rewritten, nothing stored;
- `no_model` (`route`): no champion for the symbol and interval (an unknown symbol included); the
  bar is stored all the same;
- `insufficient_history` (`features`): fewer stored bars than warm-up + lookback; bar stored;
- `prediction_failed` (`predict`): the predictor refused the input (shape, names, NaN) or the model;
- `processing_failed` (the stage it failed in: `decode`, `read`, `features`, `predict` or
  `write`): processing the record raised a deterministic error (`consumers.failures`), alone in
  its batch; the error names the exception. Nothing of it is stored (its transaction rolled back),
  so its bar never enters a window.

A dead letter keeps the record's bytes, cut to the first `MAX_ORIGINAL_BYTES` for a larger one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError

from bot.contracts import Alert, DeadLetter
from consumers.failures import describe, stage_of

MAX_ERROR_CHARS = 2000
# base64 in JSON makes a dead letter a third larger than its record: a whole record near Kafka's
# 1 MB limit would make one the broker refuses on every retry, so larger originals are cut
MAX_ORIGINAL_BYTES = 256 * 1024


class Reason(StrEnum):
    UNDECODABLE = "undecodable"
    INVALID_BAR = "invalid_bar"
    OUT_OF_RANGE = "out_of_range"
    REVISION_REFUSED = "revision_refused"
    NO_MODEL = "no_model"
    INSUFFICIENT_HISTORY = "insufficient_history"
    PREDICTION_FAILED = "prediction_failed"
    PROCESSING_FAILED = "processing_failed"


# the stage of each reason; `processing_failed` names the stage its record failed in
STAGES = {
    Reason.UNDECODABLE: "decode",
    Reason.INVALID_BAR: "validate",
    Reason.OUT_OF_RANGE: "validate",
    Reason.REVISION_REFUSED: "validate",
    Reason.NO_MODEL: "route",
    Reason.INSUFFICIENT_HISTORY: "features",
    Reason.PREDICTION_FAILED: "predict",
}


@dataclass(frozen=True, slots=True)
class RecordRef:
    """Where a record came from: its raw bytes and its Kafka coordinates."""

    value: bytes
    topic: str
    partition: int
    offset: int


def dead_letter(ref: RecordRef, reason: Reason, error: str, *, stage: str = "") -> DeadLetter:
    """The record's dead letter; an original over MAX_ORIGINAL_BYTES keeps its first bytes and
    the error says so (the whole record stays on its topic, at its offset)."""
    original = ref.value
    if len(original) > MAX_ORIGINAL_BYTES:
        error = (
            f"original cut to the first {MAX_ORIGINAL_BYTES} of {len(original)} bytes (whole at "
            f"{ref.topic}[{ref.partition}]@{ref.offset} while retained); {error}"
        )
        original = original[:MAX_ORIGINAL_BYTES]
    return DeadLetter(
        original=original,
        error=error[:MAX_ERROR_CHARS],
        reason=reason.value,
        stage=stage or STAGES[reason],
        topic=ref.topic,
        partition=ref.partition,
        offset=ref.offset,
    )


def processing_failed(ref: RecordRef, error: BaseException) -> DeadLetter:
    """The dead letter of a record whose processing fails alone, deterministically."""
    where = stage_of(error)
    text = f"processing failed in {where}: {describe(error)}"
    return dead_letter(ref, Reason.PROCESSING_FAILED, text, stage=where)


def _validation_summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or 'alert'}: {err['msg']}"
        for err in exc.errors()
    )


def decode_alert(ref: RecordRef) -> Alert | DeadLetter:
    """The record's `Alert`, or the dead letter that says why there is none."""
    try:
        return Alert.model_validate_json(ref.value)  # parsed and validated in one pass
    except ValidationError:
        pass  # tell undecodable from invalid, with the messages below
    try:
        payload = json.loads(ref.value)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        return dead_letter(ref, Reason.UNDECODABLE, f"not UTF-8 JSON: {exc}")
    try:
        return Alert.model_validate(payload)
    except ValidationError as exc:
        return dead_letter(ref, Reason.INVALID_BAR, _validation_summary(exc))
