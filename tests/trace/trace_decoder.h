// Decodes a trace file with `protoc --decode=perfetto.protos.Trace` against perfetto_subset.proto
// and turns protoc's text output into plain structs, so tests check what a Perfetto reader sees.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

struct DecodedPacket {
  uint64_t timestamp = 0;
  uint32_t clock_id = 0;
  uint32_t sequence_id = 0;
  uint32_t sequence_flags = 0;
  bool first_on_sequence = false;
  std::string kind;  // "track_event", "track_descriptor" or "clock_snapshot"

  // track_descriptor
  uint64_t uuid = 0;
  uint64_t parent_uuid = 0;
  std::string track_name;
  bool has_process = false, has_thread = false;
  int64_t pid = 0, tid = 0;
  std::string process_name, thread_name;

  // track_event
  std::string type;  // "TYPE_SLICE_BEGIN", ...
  uint64_t track_uuid = 0;
  std::string name;
  std::vector<std::string> categories;
  std::map<std::string, std::string> annotations;

  // clock_snapshot: clock id → reading
  std::map<uint32_t, uint64_t> clocks;
  std::string primary_clock;  // "BUILTIN_CLOCK_MONOTONIC", ...
};

struct DecodedTrace {
  std::vector<DecodedPacket> packets;
  std::vector<std::string> unknown_fields;  // fields protoc could not name: a wrong field number
};

DecodedTrace decode_trace(const std::filesystem::path& file);

// One slice rebuilt from BEGIN/END pairs on a track.
struct Slice {
  uint64_t track_uuid = 0;
  std::string name;
  std::string label;
  std::vector<std::string> categories;
  uint64_t begin = 0, end = 0;
  int depth = 0;
  int parent = -1;  // index into the slice list
};

// Pairs events per track like a call stack; fails the current test on an unmatched END.
std::vector<Slice> rebuild_slices(const DecodedTrace& trace);
