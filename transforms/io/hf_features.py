"""The Hugging Face `datasets` features of our Parquet shards, stored in the file's schema.

`datasets.load_dataset("parquet", ...)` reads the schema metadata key `huggingface`
(`{"info": {"features": ...}}`) and uses a feature wherever its Arrow type matches the column.
Declaring the `images` column a list of `Image` (Arrow type: list of struct{bytes, path})
makes every row's images come out as PIL images, as on the Hub; videos stay {bytes, path}
structs, because `datasets`' Video feature needs a decoder package and older releases do not
know it. Every column is declared, in the form every `datasets` release reads (a list feature
as a one-element JSON list), so old and new releases see the same thing.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

METADATA_KEY = b"huggingface"
# Arrow type -> the dtype name of datasets' `Value` feature.
_VALUE_DTYPES = {
    pa.string(): "string",
    pa.large_string(): "large_string",
    pa.binary(): "binary",
    pa.bool_(): "bool",
    pa.int64(): "int64",
    pa.int32(): "int32",
    pa.float64(): "float64",
    pa.float32(): "float32",
}
IMAGE_FEATURE = {"decode": True, "_type": "Image"}
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def feature_of(arrow_type: pa.DataType) -> Any:
    """The `datasets` feature (as its JSON form) of one Arrow type."""
    if pa.types.is_list(arrow_type):
        return [feature_of(arrow_type.value_type)]
    if pa.types.is_struct(arrow_type):
        return {field.name: feature_of(field.type) for field in arrow_type}
    if arrow_type in _VALUE_DTYPES:
        return {"dtype": _VALUE_DTYPES[arrow_type], "_type": "Value"}
    raise TypeError(f"no datasets feature for Arrow type {arrow_type}")


def features_json(schema: pa.Schema, image_columns: tuple[str, ...] = ()) -> str:
    """The `huggingface` metadata value for `schema`; `image_columns` hold lists of images."""
    features = {}
    for field in schema:
        if field.name in image_columns:
            if field.type != pa.list_(IMAGE_STRUCT):
                raise TypeError(f"{field.name} is {field.type}, not a list of {IMAGE_STRUCT}")
            features[field.name] = [IMAGE_FEATURE]
        else:
            features[field.name] = feature_of(field.type)
    return json.dumps({"info": {"features": features}})
