#include "trace/proto_writer.h"

namespace meganeura::trace {

void ProtoWriter::put_varint(uint64_t value) {
  while (value >= 0x80) {
    bytes_.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  bytes_.push_back(static_cast<char>(value));
}

void ProtoWriter::put_tag(uint32_t field, uint32_t wire_type) { put_varint((uint64_t{field} << 3) | wire_type); }

void ProtoWriter::add_varint(uint32_t field, uint64_t value) {
  put_tag(field, 0);
  put_varint(value);
}

void ProtoWriter::add_bytes(uint32_t field, std::string_view value) {
  put_tag(field, 2);
  put_varint(value.size());
  bytes_.append(value);
}

}  // namespace meganeura::trace
