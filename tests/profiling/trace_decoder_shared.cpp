// The trace tests' decoder (protoc against perfetto_subset.proto), compiled into this program too so
// both test folders read traces the same way.
#include "trace/trace_decoder.cpp"
