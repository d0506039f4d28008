#include "trace_decoder.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <sstream>

namespace {

std::string run_protoc(const std::filesystem::path& file) {
  const std::string proto_dir = MEGANEURA_SOURCE_DIR "/tests/trace";
  const std::string command = "protoc --proto_path='" + proto_dir +
                              "' --decode=perfetto.protos.Trace perfetto_subset.proto < '" + file.string() + "'";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) {
    ADD_FAILURE() << "cannot run " << command;
    return {};
  }
  std::string out;
  char buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, got);
  const int status = pclose(pipe);
  EXPECT_EQ(status, 0) << "protoc failed to decode " << file << " (is protobuf-compiler installed?)";
  return out;
}

// protoc prints strings C-escaped and quoted.
std::string unquote(const std::string& value) {
  if (value.size() < 2 || value.front() != '"') return value;
  std::string out;
  for (size_t i = 1; i + 1 < value.size(); ++i) {
    if (value[i] != '\\') {
      out.push_back(value[i]);
      continue;
    }
    const char next = value[++i];
    if (next >= '0' && next <= '7') {
      int code = 0;
      for (int n = 0; n < 3 && value[i] >= '0' && value[i] <= '7'; ++n, ++i) code = code * 8 + (value[i] - '0');
      --i;
      out.push_back(static_cast<char>(code));
    } else {
      out.push_back(next == 'n' ? '\n' : next == 't' ? '\t' : next);
    }
  }
  return out;
}

}  // namespace

DecodedTrace decode_trace(const std::filesystem::path& file) {
  DecodedTrace trace;
  std::istringstream lines(run_protoc(file));
  std::vector<std::string> path;  // enclosing message fields, outermost first
  DecodedPacket* packet = nullptr;
  std::string line;
  std::string annotation_name, annotation_value;
  uint32_t clock_id = 0;
  while (std::getline(lines, line)) {
    const size_t start = line.find_first_not_of(' ');
    if (start == std::string::npos) continue;
    line = line.substr(start);
    if (!line.empty() && line[0] >= '0' && line[0] <= '9') {
      trace.unknown_fields.push_back((path.empty() ? "" : path.back() + ".") + line);
    }
    if (line == "}") {
      if (!path.empty() && path.back() == "debug_annotations" && packet) packet->annotations[annotation_name] = annotation_value;
      path.pop_back();
      continue;
    }
    if (line.size() > 2 && line.substr(line.size() - 2) == " {") {
      const std::string field = line.substr(0, line.size() - 2);
      path.push_back(field);
      if (path.size() == 1 && field == "packet") {
        trace.packets.emplace_back();
        packet = &trace.packets.back();
      } else if (path.size() == 2 && packet) {
        packet->kind = field;
      }
      if (field == "process" && packet) packet->has_process = true;
      if (field == "thread" && packet) packet->has_thread = true;
      if (field == "debug_annotations") annotation_name.clear(), annotation_value.clear();
      continue;
    }
    const size_t colon = line.find(": ");
    if (colon == std::string::npos || !packet) continue;
    const std::string key = line.substr(0, colon);
    const std::string value = unquote(line.substr(colon + 2));
    const std::string where = path.empty() ? "" : path.back();
    const auto number = [&] { return std::stoull(value); };
    if (where == "packet") {
      if (key == "timestamp") packet->timestamp = number();
      if (key == "timestamp_clock_id") packet->clock_id = static_cast<uint32_t>(number());
      if (key == "trusted_packet_sequence_id") packet->sequence_id = static_cast<uint32_t>(number());
      if (key == "sequence_flags") packet->sequence_flags = static_cast<uint32_t>(number());
      if (key == "first_packet_on_sequence") packet->first_on_sequence = value == "true";
    } else if (where == "track_descriptor") {
      if (key == "uuid") packet->uuid = number();
      if (key == "parent_uuid") packet->parent_uuid = number();
      if (key == "name") packet->track_name = value;
    } else if (where == "process") {
      if (key == "pid") packet->pid = std::stoll(value);
      if (key == "process_name") packet->process_name = value;
    } else if (where == "thread") {
      if (key == "pid") packet->pid = std::stoll(value);
      if (key == "tid") packet->tid = std::stoll(value);
      if (key == "thread_name") packet->thread_name = value;
    } else if (where == "track_event") {
      if (key == "type") packet->type = value;
      if (key == "track_uuid") packet->track_uuid = number();
      if (key == "name") packet->name = value;
      if (key == "categories") packet->categories.push_back(value);
    } else if (where == "debug_annotations") {
      if (key == "name") annotation_name = value;
      if (key == "string_value") annotation_value = value;
    } else if (where == "clock_snapshot") {
      if (key == "primary_trace_clock") packet->primary_clock = value;
    } else if (where == "clocks") {
      if (key == "clock_id") clock_id = static_cast<uint32_t>(number());
      if (key == "timestamp") packet->clocks[clock_id] = number();
    }
  }
  return trace;
}

std::vector<Slice> rebuild_slices(const DecodedTrace& trace) {
  std::vector<Slice> slices;
  std::map<uint64_t, std::vector<int>> open;  // per track, a stack of slice indices
  for (const auto& packet : trace.packets) {
    if (packet.kind != "track_event") continue;
    auto& stack = open[packet.track_uuid];
    if (packet.type == "TYPE_SLICE_BEGIN") {
      Slice slice{.track_uuid = packet.track_uuid,
                  .name = packet.name,
                  .label = packet.annotations.count("label") ? packet.annotations.at("label") : "",
                  .categories = packet.categories,
                  .begin = packet.timestamp,
                  .depth = static_cast<int>(stack.size()),
                  .parent = stack.empty() ? -1 : stack.back()};
      stack.push_back(static_cast<int>(slices.size()));
      slices.push_back(slice);
    } else if (packet.type == "TYPE_SLICE_END") {
      if (stack.empty()) {
        ADD_FAILURE() << "SLICE_END without a BEGIN on track " << packet.track_uuid;
        continue;
      }
      slices[stack.back()].end = packet.timestamp;
      stack.pop_back();
    }
  }
  for (const auto& [track, stack] : open) EXPECT_TRUE(stack.empty()) << stack.size() << " slices left open on track " << track;
  return slices;
}
