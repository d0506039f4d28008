#include "io/safetensors_header.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "meganeura/error.h"

namespace meganeura::io {
namespace {

using nlohmann::json;

class HeaderError {
 public:
  explicit HeaderError(std::string label) : label_(std::move(label)) {}
  [[noreturn]] void operator()(const std::string& problem) const { throw Error(label_ + ": " + problem); }

 private:
  std::string label_;
};

std::string quoted(const std::string& name) { return "'" + name + "'"; }

bool is_unsigned_integer(const json& value) { return value.is_number_unsigned(); }

std::vector<int64_t> read_shape(const json& value, const std::string& name, const HeaderError& fail) {
  if (!value.is_array()) fail("shape of " + quoted(name) + " must be an array of non-negative integers");
  std::vector<int64_t> shape;
  shape.reserve(value.size());
  for (const auto& dim : value) {
    if (!is_unsigned_integer(dim)) fail("shape of " + quoted(name) + " must list non-negative integers, got " + dim.dump());
    const uint64_t d = dim.get<uint64_t>();
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("shape of " + quoted(name) + " has a dimension too large: " + std::to_string(d));
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

HeaderEntry read_entry(const std::string& name, const json& value, const HeaderError& fail) {
  if (name.empty()) fail("a tensor has an empty name");
  if (!value.is_object()) fail("entry " + quoted(name) + " must be an object with dtype, shape and data_offsets");
  for (const auto& [key, _] : value.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      fail("entry " + quoted(name) + " has unknown field '" + key + "'");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!value.contains(key)) fail("entry " + quoted(name) + " lacks " + key);

  HeaderEntry entry;
  entry.name = name;
  const auto& dtype = value["dtype"];
  if (!dtype.is_string()) fail("dtype of " + quoted(name) + " must be a string, got " + dtype.dump());
  try {
    entry.dtype = safetensors_dtype_from_name(dtype.get<std::string>());
  } catch (const Error& e) {
    fail(std::string(e.what()) + " for " + quoted(name));
  }
  entry.shape = read_shape(value["shape"], name, fail);

  const auto& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !is_unsigned_integer(offsets[0]) ||
      !is_unsigned_integer(offsets[1]))
    fail("data_offsets of " + quoted(name) + " must be two non-negative integers [begin, end], got " + offsets.dump());
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  if (entry.begin > entry.end)
    fail("data_offsets of " + quoted(name) + " are reversed: [" + std::to_string(entry.begin) + ", " +
         std::to_string(entry.end) + "]");

  uint64_t bytes = dtype_size(entry.dtype);
  for (int64_t d : entry.shape)
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes))
      fail("byte size of " + quoted(name) + " with shape " + format_shape(entry.shape) + " overflows 64 bits");
  if (bytes != entry.end - entry.begin)
    fail(quoted(name) + " needs " + std::to_string(bytes) + " bytes for " + std::string(dtype_name(entry.dtype)) +
         " shape " + format_shape(entry.shape) + " but its data_offsets span " +
         std::to_string(entry.end - entry.begin));
  return entry;
}

std::map<std::string, std::string> read_metadata(const json& value, const HeaderError& fail) {
  if (!value.is_object()) fail("__metadata__ must be an object of strings, got " + std::string(value.type_name()));
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string())
      fail("__metadata__ must map strings to strings, but '" + key + "' holds a " + std::string(v.type_name()));
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

json parse_json(std::string_view text, const HeaderError& fail) {
  // nlohmann keeps the last of duplicate keys silently; a duplicate tensor name is an error here.
  std::set<std::string> top_level_keys;
  std::string duplicate;
  json::parser_callback_t reject_duplicates = [&](int depth, json::parse_event_t event, json& parsed) {
    // A valid header nests three levels (header, entry, shape); deeper input only costs memory.
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) && depth > 3)
      fail("header is nested more deeply than a SafeTensors header can be");
    if (event == json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!top_level_keys.insert(key).second) duplicate = key;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text.begin(), text.end(), reject_duplicates);
  } catch (const json::exception& e) {
    fail(std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!duplicate.empty()) fail("header names '" + duplicate + "' twice (duplicate key)");
  return header;
}

}  // namespace

ParsedHeader parse_safetensors(std::span<const std::byte> file, const std::string& label) {
  const HeaderError fail(label);
  if (file.size() < 8)
    fail("file is " + std::to_string(file.size()) +
         " bytes, too short for the 8-byte header length of a SafeTensors file");
  uint64_t header_length = 0;
  std::memcpy(&header_length, file.data(), 8);  // little-endian on every supported host
  if (header_length > max_safetensors_header_bytes)
    fail("header length " + std::to_string(header_length) + " exceeds the limit of " +
         std::to_string(max_safetensors_header_bytes) + " bytes (not a SafeTensors file, or corrupt)");
  if (header_length > file.size() - 8)
    fail("header length " + std::to_string(header_length) + " runs past the end of the file (" +
         std::to_string(file.size()) + " bytes); the file is truncated");
  if (header_length == 0) fail("header is empty (length 0)");

  const std::string_view text(reinterpret_cast<const char*>(file.data()) + 8, header_length);
  // The JSON lexer stops at a NUL as if the input ended, which would hide whatever follows it.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos)
    fail("header contains a NUL byte at offset " + std::to_string(8 + nul) + " (pad headers with spaces)");
  const json header = parse_json(text, fail);
  if (!header.is_object()) fail("header is not a JSON object (got " + std::string(header.type_name()) + ")");

  ParsedHeader parsed;
  parsed.data_offset = 8 + header_length;
  const uint64_t data_size = file.size() - parsed.data_offset;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      parsed.metadata = read_metadata(value, fail);
      continue;
    }
    HeaderEntry entry = read_entry(name, value, fail);
    if (entry.end > data_size)
      fail("data_offsets [" + std::to_string(entry.begin) + ", " + std::to_string(entry.end) + "] of " + quoted(name) +
           " run past the end of the data section (" + std::to_string(data_size) + " bytes); the file is truncated");
    parsed.tensors.push_back(std::move(entry));
  }

  // Tensors must tile the data section exactly: no overlap, no gap, nothing left over.
  std::sort(parsed.tensors.begin(), parsed.tensors.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const HeaderEntry* previous = nullptr;
  for (const auto& entry : parsed.tensors) {
    if (entry.begin < covered)
      fail("tensors " + quoted(previous->name) + " and " + quoted(entry.name) + " overlap in the data section");
    if (entry.begin > covered)
      fail("gap of " + std::to_string(entry.begin - covered) + " unused bytes before " + quoted(entry.name) +
           " at data offset " + std::to_string(covered));
    covered = entry.end;
    previous = &entry;
  }
  if (covered != data_size)
    fail(std::to_string(data_size - covered) + " trailing bytes after the last tensor (data section is " +
         std::to_string(data_size) + " bytes, tensors cover " + std::to_string(covered) + ")");
  return parsed;
}

}  // namespace meganeura::io
