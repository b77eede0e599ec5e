"""The kind of a model's input: one word for it in the Parquet layout, model.json and the code.

- IMAGE ("image"): a binary column of n_in uint8 bytes a row (pixels), scaled by 1/255 before
  the first layer; what `dist-mnist ingest` writes.
- FEATURES ("features"): an array<float> column of n_in values a row, used as given; what the
  Estimator stages from a vector or array column.

A member's value is both the Parquet column's name and model.json's "feature_kind". No
pyarrow or pyspark at import: `from_arrow` reads the type it is given, `from_spark` imports
pyspark's types itself.
"""

from __future__ import annotations

from enum import Enum


class FeatureKind(str, Enum):
    """What a row's features are; the value is the column name and model.json's word."""

    IMAGE = "image"
    FEATURES = "features"

    def __str__(self) -> str:  # "image", not "FeatureKind.IMAGE", in messages on every Python
        return self.value

    @property
    def column(self) -> str:
        """The column of our Parquet layout that holds this kind."""
        return self.value

    @property
    def unit(self) -> str:
        """What a row's n_in counts: 'bytes' or 'values'."""
        return "bytes" if self is FeatureKind.IMAGE else "values"

    @property
    def arrow_type(self) -> str:
        """The column type this kind takes, for messages."""
        return "binary" if self is FeatureKind.IMAGE else "an array of float or double"

    @classmethod
    def from_arrow(cls, arrow_type) -> FeatureKind | None:
        """IMAGE for (large) binary, FEATURES for a (large, fixed-size) list of float or double,
        None for any other pyarrow type."""
        import pyarrow as pa

        if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
            return cls.IMAGE
        lists = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
        if any(is_list(arrow_type) for is_list in lists) and pa.types.is_floating(arrow_type.value_type):
            return cls.FEATURES
        return None

    @classmethod
    def from_spark(cls, data_type) -> FeatureKind | None:
        """IMAGE for BinaryType, FEATURES for a vector (VectorUDT) or array<float|double>, None
        for any other Spark type."""
        from pyspark.ml.linalg import VectorUDT
        from pyspark.sql.types import ArrayType, BinaryType, DoubleType, FloatType

        if isinstance(data_type, BinaryType):
            return cls.IMAGE
        if isinstance(data_type, VectorUDT) or (
            isinstance(data_type, ArrayType) and isinstance(data_type.elementType, (FloatType, DoubleType))
        ):
            return cls.FEATURES
        return None

    def check_arrow(self, arrow_type, where: str, column: str | None = None) -> None:
        """ValueError naming `where`, the column and its type unless `arrow_type` holds this kind."""
        if FeatureKind.from_arrow(arrow_type) is not self:
            raise ValueError(
                f"{where}: column '{column or self.column}' has type {arrow_type}, expected {self.arrow_type}"
            )

    @classmethod
    def of_model(cls, meta: dict, where: str) -> FeatureKind:
        """model.json's "feature_kind": IMAGE when absent; "float" (what models before
        "features" say) is FEATURES. Errors name `where`."""
        word = meta.get("feature_kind", cls.IMAGE.value)
        word = cls.FEATURES.value if word == LEGACY_FEATURES else word
        if word not in [k.value for k in cls]:  # a list: the JSON value may be unhashable
            raise ValueError(
                f"{where}: 'feature_kind' must be one of {[k.value for k in cls]} "
                f"(or {LEGACY_FEATURES!r}, an older word for 'features'), got {word!r}"
            )
        return cls(word)


LEGACY_FEATURES = "float"  # model.json's "feature_kind" for FEATURES before it had that word
