"""The training options, read from the same schema as the TypeScript engine (train_options.json, exported from
src/train/options.ts by python/tools/export-options.ts): unknown keys are errors, values must already have their
option's type ("lr": "3e-4" is an error, not a coercion), ranges are checked, defaults filled in, and the derived
rules of src/train/config.ts makeTrainConfig applied. A recipe or --config file means the same to both engines.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_HERE, "train_options.json"), encoding="utf-8") as _f:
    SCHEMA = json.load(_f)
OPTIONS: Dict[str, dict] = SCHEMA["options"]


class OptionError(ValueError):
    """A bad training option: names the key, the value, what was expected and a hint."""


def _type_ok(s: dict, v: Any) -> bool:
    if "anyOf" in s:
        return any(_type_ok(x, v) for x in s["anyOf"])
    t = s.get("type")
    if t == "null":
        return v is None
    if t == "integer":
        ok = isinstance(v, int) and not isinstance(v, bool) or (isinstance(v, float) and v.is_integer())
    elif t == "number":
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
    elif t == "string":
        ok = isinstance(v, str) and len(v) >= s.get("minLength", 0)
    else:
        ok = True
    if not ok:
        return False
    if "enum" in s and v not in s["enum"]:
        return False
    if t in ("integer", "number"):
        if "minimum" in s and v < s["minimum"] or "maximum" in s and v > s["maximum"]:
            return False
        if "exclusiveMinimum" in s and v <= s["exclusiveMinimum"] or "exclusiveMaximum" in s and v >= s["exclusiveMaximum"]:
            return False
    return True


def check_values(values: Dict[str, Any], where: str = "options") -> None:
    for k, v in values.items():
        if k not in OPTIONS:
            raise OptionError(f"{where}: {k} is not a training option (training options: {', '.join(OPTIONS)})")
        spec = OPTIONS[k]
        if not _type_ok(spec["schema"], v):
            hint = " (write numbers without quotes)" if isinstance(v, str) and spec["kind"] == "number" else ""
            raise OptionError(f"{where}: option {k} = {json.dumps(v)} {spec['expect']}{hint}")


def read_options_file(path: str) -> Dict[str, Any]:
    """A --config / recipe stage file: one JSON object of option keys plus an optional "description"."""
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    if not isinstance(raw, dict):
        raise OptionError(f"{path}: holds {type(raw).__name__}, not an object of training options")
    values = {k: v for k, v in raw.items() if k not in SCHEMA["fileNotes"]}
    check_values(values, path)
    return values


def option_from_string(key: str, s: str) -> Any:
    """A CLI or --set string as the option's value (numbers by float(); '' is not a number)."""
    spec = OPTIONS[key]
    if spec["kind"] != "number":
        return s
    v = float(s) if s.strip() else float("nan")
    return int(v) if v.is_integer() and spec["schema"].get("type") == "integer" else v


def key_of(name: str) -> Optional[str]:
    if name in OPTIONS:
        return name
    flag = name.lstrip("-")
    return next((k for k, s in OPTIONS.items() if s["flag"] == flag), None)


def make_train_config(values: Dict[str, Any]) -> Dict[str, Any]:
    """Defaults <- values, validated; the derived rules of makeTrainConfig (stage from init, trainable all for
    pretraining, cacheDir OUT/cache)."""
    given = {k: v for k, v in values.items() if v is not None or OPTIONS.get(k, {}).get("default", 0) is None}
    check_values(given)
    c = {k: s["default"] for k, s in OPTIONS.items() if not s["required"]}
    c.update(given)
    if "stage" not in given and c.get("init"):
        c["stage"] = "pretrain"
    for k in ("data", "out"):
        if not c.get(k):
            raise OptionError(f"train config: {k} is required")
    if c["stage"] != "pretrain":
        if not c.get("model"):
            raise OptionError(f"train config: model is required for stage {c['stage']}")
        if not c.get("teacher"):
            raise OptionError(f"train config: teacher is required for stage {c['stage']}")
    if "trainable" not in given and c["stage"] == "pretrain":
        c["trainable"] = "all"
    if not c.get("cacheDir"):
        c["cacheDir"] = os.path.join(c["out"], "cache")
    return c
