// A minimal protobuf wire-format encoder: varints, length-delimited fields and nested messages,
// enough to write Perfetto traces without a protobuf library (DESIGN.md: the trace writer is ours).
//
//   ProtoWriter packet;
//   packet.add_varint(8, timestamp);                  // uint64 timestamp = 8;
//   {
//     ProtoWriter event;
//     event.add_string(23, "optimize");               // string name = 23;
//     packet.add_message(11, event);                  // TrackEvent track_event = 11;
//   }
//   std::string bytes = packet.take();
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace meganeura::trace {

class ProtoWriter {
 public:
  // Wire types (protobuf encoding spec): varint 0, length-delimited 2.
  void add_varint(uint32_t field, uint64_t value);
  void add_bool(uint32_t field, bool value) { add_varint(field, value ? 1 : 0); }
  // int32/int64 fields encode negative values as 10-byte two's-complement varints.
  void add_int(uint32_t field, int64_t value) { add_varint(field, static_cast<uint64_t>(value)); }
  void add_string(uint32_t field, std::string_view value) { add_bytes(field, value); }
  void add_bytes(uint32_t field, std::string_view value);
  void add_message(uint32_t field, const ProtoWriter& message) { add_bytes(field, message.bytes_); }

  const std::string& bytes() const { return bytes_; }
  std::string take() { return std::move(bytes_); }
  bool empty() const { return bytes_.empty(); }

 private:
  void put_varint(uint64_t value);
  void put_tag(uint32_t field, uint32_t wire_type);

  std::string bytes_;
};

}  // namespace meganeura::trace
