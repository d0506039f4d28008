// Perfetto's trace messages, the few that the trace writer emits, encoded with ProtoWriter. Field
// numbers are Perfetto's own (protos/perfetto/trace/trace_packet.proto, clock_snapshot.proto,
// track_event/track_event.proto, track_descriptor.proto, process_descriptor.proto,
// thread_descriptor.proto, debug_annotation.proto); tests/trace/perfetto_subset.proto mirrors them
// and the tests decode our output with protoc against it.
//
//   PacketHeader header{.timestamp_ns = now, .clock_id = kClockMonotonic, .sequence_id = 1};
//   TrackEvent event{.type = EventType::slice_begin, .track_uuid = uuid, .name = "optimize"};
//   std::string entry = trace_entry(track_event_packet(header, event));  // append to the file
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meganeura::trace {

// ClockSnapshot.Clock.BuiltinClocks
inline constexpr uint32_t kClockRealtime = 1;
inline constexpr uint32_t kClockMonotonic = 3;
inline constexpr uint32_t kClockBoottime = 6;

// TracePacket.SequenceFlags
inline constexpr uint32_t kSeqIncrementalStateCleared = 1;
inline constexpr uint32_t kSeqNeedsIncrementalState = 2;

// Fields every packet carries. A zero timestamp or clock is left out.
struct PacketHeader {
  uint64_t timestamp_ns = 0;
  uint32_t clock_id = 0;
  uint32_t sequence_id = 0;
  uint32_t sequence_flags = 0;
  bool first_on_sequence = false;
};

struct ProcessInfo {
  int32_t pid = 0;
  std::string name;
};

struct ThreadInfo {
  int32_t pid = 0;
  int32_t tid = 0;
  std::string name;
};

struct TrackDescriptor {
  uint64_t uuid = 0;
  uint64_t parent_uuid = 0;  // 0: none
  std::string name = {};     // empty: none
  std::optional<ProcessInfo> process = {};
  std::optional<ThreadInfo> thread = {};
};

// TrackEvent.Type
enum class EventType : uint32_t { slice_begin = 1, slice_end = 2, instant = 3 };

struct TrackEvent {
  EventType type = EventType::instant;
  uint64_t track_uuid = 0;
  std::string_view name = {};      // empty: none (slice ends need no name)
  std::string_view category = {};  // empty: none
  // Debug annotations with string values, shown as the slice's arguments in the UI.
  std::vector<std::pair<std::string_view, std::string_view>> annotations = {};
};

// `primary_clock` (0: leave Perfetto's default, BOOTTIME) becomes the trace's time axis.
std::string clock_snapshot_packet(const PacketHeader& header,
                                  const std::vector<std::pair<uint32_t, uint64_t>>& clock_readings,
                                  uint32_t primary_clock = 0);
std::string track_descriptor_packet(const PacketHeader& header, const TrackDescriptor& track);
std::string track_event_packet(const PacketHeader& header, const TrackEvent& event);

// Wraps an encoded TracePacket as one `repeated TracePacket packet = 1` entry of a Trace; a trace
// file is these entries back to back, so appending keeps the file a valid Trace at every point.
std::string trace_entry(const std::string& packet);

}  // namespace meganeura::trace
