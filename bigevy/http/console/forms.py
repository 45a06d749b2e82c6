"""What a console form's fields become: the API's wire models, checked as the API checks them
and refused with the API's message (`invalid_body`, the one mapping of schema errors)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from bigevy.http.errors import invalid_body

M = TypeVar("M", bound=BaseModel)


def parsed(model: type[M], **fields: Any) -> M:
    """A form's fields as `model`; `ValidationFailed` (422) naming the first bad field."""
    try:
        return model.model_validate(fields)
    except ValidationError as invalid:
        raise invalid_body(RequestValidationError(invalid.errors())) from None


def words(text: str) -> list[str]:
    """A comma-separated form field as a list (blank entries dropped)."""
    return [part.strip() for part in text.split(",") if part.strip()]
