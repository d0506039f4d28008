#include "trace/perfetto_packets.h"

#include "trace/proto_writer.h"

namespace meganeura::trace {
namespace {

// message Trace
constexpr uint32_t kTracePacket = 1;
// message TracePacket
constexpr uint32_t kClockSnapshot = 6;
constexpr uint32_t kTimestamp = 8;
constexpr uint32_t kTrustedPacketSequenceId = 10;
constexpr uint32_t kTrackEvent = 11;
constexpr uint32_t kSequenceFlags = 13;
constexpr uint32_t kTimestampClockId = 58;
constexpr uint32_t kTrackDescriptor = 60;
constexpr uint32_t kFirstPacketOnSequence = 87;
// message ClockSnapshot / ClockSnapshot.Clock
constexpr uint32_t kSnapshotClocks = 1;
constexpr uint32_t kSnapshotPrimaryTraceClock = 2;
constexpr uint32_t kClockId = 1;
constexpr uint32_t kClockTimestamp = 2;
// message TrackDescriptor
constexpr uint32_t kTrackUuid = 1;
constexpr uint32_t kTrackName = 2;
constexpr uint32_t kTrackProcess = 3;
constexpr uint32_t kTrackThread = 4;
constexpr uint32_t kTrackParentUuid = 5;
// message ProcessDescriptor
constexpr uint32_t kProcessPid = 1;
constexpr uint32_t kProcessName = 6;
// message ThreadDescriptor
constexpr uint32_t kThreadPid = 1;
constexpr uint32_t kThreadTid = 2;
constexpr uint32_t kThreadName = 5;
// message TrackEvent
constexpr uint32_t kEventDebugAnnotations = 4;
constexpr uint32_t kEventType = 9;
constexpr uint32_t kEventTrackUuid = 11;
constexpr uint32_t kEventCategories = 22;
constexpr uint32_t kEventName = 23;
// message DebugAnnotation
constexpr uint32_t kAnnotationStringValue = 6;
constexpr uint32_t kAnnotationName = 10;

ProtoWriter begin_packet(const PacketHeader& header) {
  ProtoWriter packet;
  if (header.timestamp_ns) packet.add_varint(kTimestamp, header.timestamp_ns);
  if (header.clock_id) packet.add_varint(kTimestampClockId, header.clock_id);
  if (header.sequence_id) packet.add_varint(kTrustedPacketSequenceId, header.sequence_id);
  if (header.sequence_flags) packet.add_varint(kSequenceFlags, header.sequence_flags);
  if (header.first_on_sequence) packet.add_bool(kFirstPacketOnSequence, true);
  return packet;
}

}  // namespace

std::string clock_snapshot_packet(const PacketHeader& header,
                                  const std::vector<std::pair<uint32_t, uint64_t>>& clock_readings,
                                  uint32_t primary_clock) {
  ProtoWriter snapshot;
  for (const auto& [clock, timestamp] : clock_readings) {
    ProtoWriter reading;
    reading.add_varint(kClockId, clock);
    reading.add_varint(kClockTimestamp, timestamp);
    snapshot.add_message(kSnapshotClocks, reading);
  }
  if (primary_clock) snapshot.add_varint(kSnapshotPrimaryTraceClock, primary_clock);
  ProtoWriter packet = begin_packet(header);
  packet.add_message(kClockSnapshot, snapshot);
  return packet.take();
}

std::string track_descriptor_packet(const PacketHeader& header, const TrackDescriptor& track) {
  ProtoWriter descriptor;
  descriptor.add_varint(kTrackUuid, track.uuid);
  if (!track.name.empty()) descriptor.add_string(kTrackName, track.name);
  if (track.process) {
    ProtoWriter process;
    process.add_int(kProcessPid, track.process->pid);
    if (!track.process->name.empty()) process.add_string(kProcessName, track.process->name);
    descriptor.add_message(kTrackProcess, process);
  }
  if (track.thread) {
    ProtoWriter thread;
    thread.add_int(kThreadPid, track.thread->pid);
    thread.add_int(kThreadTid, track.thread->tid);
    if (!track.thread->name.empty()) thread.add_string(kThreadName, track.thread->name);
    descriptor.add_message(kTrackThread, thread);
  }
  if (track.parent_uuid) descriptor.add_varint(kTrackParentUuid, track.parent_uuid);
  ProtoWriter packet = begin_packet(header);
  packet.add_message(kTrackDescriptor, descriptor);
  return packet.take();
}

std::string track_event_packet(const PacketHeader& header, const TrackEvent& event) {
  ProtoWriter encoded;
  for (const auto& [name, value] : event.annotations) {
    ProtoWriter annotation;
    annotation.add_string(kAnnotationName, name);
    annotation.add_string(kAnnotationStringValue, value);
    encoded.add_message(kEventDebugAnnotations, annotation);
  }
  encoded.add_varint(kEventType, static_cast<uint32_t>(event.type));
  encoded.add_varint(kEventTrackUuid, event.track_uuid);
  if (!event.category.empty()) encoded.add_string(kEventCategories, event.category);
  if (!event.name.empty()) encoded.add_string(kEventName, event.name);
  ProtoWriter packet = begin_packet(header);
  packet.add_message(kTrackEvent, encoded);
  return packet.take();
}

std::string trace_entry(const std::string& packet) {
  ProtoWriter entry;
  entry.add_bytes(kTracePacket, packet);
  return entry.take();
}

}  // namespace meganeura::trace
