// MpiReducer: parameter broadcast and gradient averaging over MPI, with a deadline on every
// collective so that a dead or hung rank becomes an Error instead of a hang.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "meganeura/device.h"
#include "meganeura/distributed.h"
#include "meganeura/error.h"

namespace meganeura::distributed {

namespace {

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(length));
}

double timeout_from_environment(double fallback) {
  const char* text = std::getenv("MEGANEURA_MPI_TIMEOUT");
  if (!text || !*text) return fallback;
  char* end = nullptr;
  const double seconds = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(seconds > 0)) {
    throw Error(std::string("MEGANEURA_MPI_TIMEOUT=\"") + text + "\" is not a number of seconds > 0");
  }
  return seconds;
}

// Ranks of one host share its GPUs: the local_rank-th device of the preferred device's kind.
void select_device_for(int local_rank) {
  if (const char* chosen = std::getenv("MEGANEURA_DEVICE"); chosen && *chosen) return;
  const std::vector<DeviceInfo> devices = list_devices();
  const auto preferred = std::find_if(devices.begin(), devices.end(), [](const DeviceInfo& d) { return d.preferred; });
  if (preferred == devices.end()) return;  // creating the session explains what is missing
  std::vector<uint32_t> same_kind;
  for (const DeviceInfo& device : devices) {
    if (device.type == preferred->type) same_kind.push_back(device.index);
  }
  const uint32_t index = same_kind[static_cast<size_t>(local_rank) % same_kind.size()];
  setenv("MEGANEURA_DEVICE", std::to_string(index).c_str(), /*overwrite=*/0);
}

}  // namespace

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (const char* value = std::getenv(name); value && *value) return true;
  }
  return false;
}

// Consecutive gradients packed into one all-reduce; the means go back to `targets` at the end.
struct Bucket {
  std::vector<double> values;
  std::vector<std::vector<double>*> targets;
};

struct MpiReducer::State {
  MpiOptions options;
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  bool initialized_here = false;
  bool failed = false;  // a collective failed or timed out: finalizing could wait for the dead rank

  // The all-reduces run on their own thread, bucket after bucket, while the caller reads back the
  // next gradients: Open MPI progresses a non-blocking collective only inside MPI calls, so without
  // a thread that keeps calling it nothing would overlap. The caller's thread calls MPI only while
  // this one is idle (MPI_THREAD_SERIALIZED).
  std::thread reducer_thread;
  std::mutex mutex;
  std::condition_variable work_ready, work_done;
  std::deque<Bucket*> queue;
  std::vector<std::unique_ptr<Bucket>> buckets;  // this step's, filled in order
  size_t queued = 0, reduced = 0;
  std::string thread_error;
  bool stopping = false;

  void reduce_bucket(Bucket& bucket) {
    std::vector<MPI_Request> request(1);
    check(MPI_Iallreduce(MPI_IN_PLACE, bucket.values.data(), static_cast<int>(bucket.values.size()), MPI_DOUBLE,
                         MPI_SUM, comm, request.data()),
          "MPI gradient all-reduce");
    wait(request, "MPI gradient all-reduce");
  }

  void run_reducer_thread() {
    for (;;) {
      Bucket* bucket = nullptr;
      bool skip = false;
      {
        std::unique_lock lock(mutex);
        work_ready.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;
        bucket = queue.front();
        queue.pop_front();
        skip = !thread_error.empty();
      }
      std::string error;
      if (!skip) {
        try {
          reduce_bucket(*bucket);
        } catch (const Error& e) {
          error = e.what();
        }
      }
      std::lock_guard lock(mutex);
      if (!error.empty() && thread_error.empty()) thread_error = error;
      ++reduced;
      work_done.notify_all();
    }
  }

  void enqueue(Bucket* bucket) {
    {
      std::lock_guard lock(mutex);
      queue.push_back(bucket);
      ++queued;
    }
    work_ready.notify_one();
  }

  void check(int code, const char* what) {
    if (code == MPI_SUCCESS) return;
    failed = true;
    throw Error(std::string(what) + " failed on rank " + std::to_string(rank) + " of " + std::to_string(world_size) +
                ": " + mpi_error_text(code) + ". Another rank has probably died; see its output");
  }

  // Waits for `requests` until the deadline, polling so that a dead peer cannot block us for ever.
  void wait(std::vector<MPI_Request>& requests, const char* what) {
    using Clock = std::chrono::steady_clock;
    const auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.timeout_seconds));
    auto pause = std::chrono::microseconds(20);
    for (;;) {
      int done = 0;
      check(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE), what);
      if (done) return;
      if (Clock::now() > deadline) {
        failed = true;
        throw Error(std::string(what) + " did not finish within " + std::to_string(options.timeout_seconds) +
                    " s on rank " + std::to_string(rank) + " of " + std::to_string(world_size) +
                    ": another rank has probably died or hung; see its output (the limit is "
                    "MpiOptions::timeout_seconds or MEGANEURA_MPI_TIMEOUT)");
      }
      // Back off up to 1 ms: ranks often share cores with each other and with the GPU driver.
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }
};

MpiReducer::MpiReducer(MpiOptions options) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.options = options;
  s.options.timeout_seconds = timeout_from_environment(options.timeout_seconds);
  if (!(s.options.timeout_seconds > 0)) throw Error("MpiOptions::timeout_seconds must be > 0");
  if (s.options.bucket_bytes < sizeof(double)) throw Error("MpiOptions::bucket_bytes must hold at least one value");
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) throw Error("MpiReducer: MPI was already finalized in this process; create one MpiReducer per process");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
      throw Error("MpiReducer: MPI_Init failed; start the program with mpirun (Debian: openmpi-bin)");
    }
    s.initialized_here = true;
  }
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  if (level < MPI_THREAD_SERIALIZED) {
    throw Error("MpiReducer: this MPI offers no MPI_THREAD_SERIALIZED support, which the overlapped all-reduce "
                "needs; use Open MPI (Debian: libopenmpi-dev) or initialize MPI with MPI_Init_thread at that level");
  }
  // A private communicator whose errors come back as codes (then Errors) instead of aborting.
  MPI_Comm_dup(MPI_COMM_WORLD, &s.comm);
  MPI_Comm_set_errhandler(s.comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(s.comm, &s.rank);
  MPI_Comm_size(s.comm, &s.world_size);
  MPI_Comm host = MPI_COMM_NULL;
  MPI_Comm_split_type(s.comm, MPI_COMM_TYPE_SHARED, s.rank, MPI_INFO_NULL, &host);
  MPI_Comm_rank(host, &s.local_rank);
  MPI_Comm_free(&host);
  if (s.options.select_device) select_device_for(s.local_rank);
  s.reducer_thread = std::thread([&s] { s.run_reducer_thread(); });
}

MpiReducer::~MpiReducer() {
  if (!state_) return;
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->work_ready.notify_all();
  state_->reducer_thread.join();  // bounded: a collective in flight gives up at its deadline
  if (state_->failed || !state_->thread_error.empty()) return;  // exit unfinalized; mpirun ends the rest
  MPI_Comm_free(&state_->comm);
  if (state_->initialized_here) MPI_Finalize();
}

int MpiReducer::rank() const { return state_->rank; }
int MpiReducer::world_size() const { return state_->world_size; }
int MpiReducer::local_rank() const { return state_->local_rank; }

void MpiReducer::barrier() {
  std::vector<MPI_Request> request(1);
  state_->check(MPI_Ibarrier(state_->comm, request.data()), "MPI barrier");
  state_->wait(request, "MPI barrier");
}

void MpiReducer::broadcast_parameters(Session& session) {
  State& s = *state_;
  const std::vector<std::string> names = session.parameter_names();
  std::vector<std::vector<float>> values;
  long long count = 0;
  for (const std::string& name : names) {
    values.push_back(session.read_parameter(name));
    count += static_cast<long long>(values.back().size());
  }
  // Compare the models first: a broadcast of mismatched sizes would fail obscurely or not at all.
  long long bounds[2] = {count, -count};
  std::vector<MPI_Request> requests(1);
  s.check(MPI_Iallreduce(MPI_IN_PLACE, bounds, 2, MPI_LONG_LONG, MPI_MAX, s.comm, requests.data()),
          "MPI model-size check");
  s.wait(requests, "MPI model-size check");
  if (bounds[0] != count || -bounds[1] != count) {
    throw Error("MpiReducer: the ranks' models differ: between " + std::to_string(-bounds[1]) + " and " +
                std::to_string(bounds[0]) + " parameter values; every rank must build the same graph");
  }
  requests.assign(values.size(), MPI_REQUEST_NULL);
  for (size_t p = 0; p < values.size(); ++p) {
    s.check(MPI_Ibcast(values[p].data(), static_cast<int>(values[p].size()), MPI_FLOAT, 0, s.comm, &requests[p]),
            "MPI parameter broadcast");
  }
  s.wait(requests, "MPI parameter broadcast");
  if (s.rank != 0) {
    for (size_t p = 0; p < values.size(); ++p) session.set_parameter(names[p], values[p]);
  }
}

void MpiReducer::start_average(std::vector<double>& values) {
  State& s = *state_;
  if (s.world_size == 1) return;
  const size_t bucket_values = std::max<size_t>(1, s.options.bucket_bytes / sizeof(double));
  if (s.buckets.empty() || s.buckets.back()->values.size() >= bucket_values ||
      s.buckets.size() <= s.queued) {
    s.buckets.push_back(std::make_unique<Bucket>());
  }
  Bucket& bucket = *s.buckets.back();
  bucket.values.insert(bucket.values.end(), values.begin(), values.end());
  bucket.targets.push_back(&values);
  if (bucket.values.size() >= bucket_values) s.enqueue(&bucket);
}

void MpiReducer::finish_average() {
  State& s = *state_;
  if (s.world_size == 1) return;
  if (s.buckets.size() > s.queued) s.enqueue(s.buckets.back().get());
  {
    std::unique_lock lock(s.mutex);
    s.work_done.wait(lock, [&] { return s.reduced == s.queued; });
    if (!s.thread_error.empty()) {
      s.failed = true;
      throw Error(s.thread_error);
    }
  }
  const double scale = 1.0 / s.world_size;
  for (const auto& bucket : s.buckets) {
    size_t at = 0;
    for (std::vector<double>* target : bucket->targets) {
      for (double& x : *target) x = bucket->values[at++] * scale;
    }
  }
  s.buckets.clear();
  s.queued = s.reduced = 0;
}

}  // namespace meganeura::distributed
