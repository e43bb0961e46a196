"""Constants of the gRPC wire between the front end and its workers, which both sides must agree on.

Plain values only: importing this module loads neither grpc nor generated code (see onebox_common/__init__).
"""

from __future__ import annotations

# Trailing-metadata key a worker sets with INVALID_ARGUMENT to name the OpenAI request field at fault
# (e.g. "messages" for a prompt that does not fit the context); the front end puts it in the error's `param`.
PARAM_METADATA_KEY = "onebox-param"

# The largest gRPC message either side sends or accepts: images, audio and embedding batches are big.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
