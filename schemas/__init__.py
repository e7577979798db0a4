"""The event catalog (``avro/*.avsc``) and the wire format every log carries.

Public surface: :class:`Event`, :func:`encode`, :func:`decode`, :func:`make_envelope`,
:func:`default_catalog`, and the packed metric columns of ``MetricsLogged``.
"""

from ledgerflow.schemas.catalog import Catalog, EventSchema, default_catalog, load_catalog
from ledgerflow.schemas.codec import HEADER_SIZE, MARKER, Event, decode, encode, make_envelope, writer_schema_of
from ledgerflow.schemas.errors import EventDecodeError, EventEncodeError, SchemaError, UnknownFingerprintError
from ledgerflow.schemas.metric_columns import check_series, count_points, pack_series, unpack_series

__all__ = [
    "HEADER_SIZE", "MARKER", "Catalog", "Event", "EventDecodeError", "EventEncodeError", "EventSchema",
    "SchemaError", "UnknownFingerprintError", "check_series", "count_points", "decode", "default_catalog", "encode",
    "load_catalog", "make_envelope", "pack_series", "unpack_series", "writer_schema_of",
]
