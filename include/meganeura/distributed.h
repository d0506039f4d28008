// meganeura/distributed.h — data-parallel training over MPI: one process per GPU.
//
//   int main() {
//     meganeura::distributed::MpiReducer mpi;  // MPI_Init; this rank's GPU chosen from its local rank
//     const int64_t rows = 100;                  // per rank; the combined batch is rows · world_size
//     meganeura::Session session = meganeura::build_session(meganeura::train::mnist_mlp(rows), {.seed = 1});
//     meganeura::train::TrainConfig config;
//     config.reducer = &mpi;
//     if (mpi.rank() != 0) config.progress = meganeura::train::Progress::off;
//     meganeura::train::Trainer trainer(session, config);  // rank 0's parameters on every rank
//     meganeura::data::DataLoader loader(dataset, {.batch_size = rows * mpi.world_size(), .drop_last = true,
//                                                 .seed = 1});
//     trainer.train(loader, 5);  // each rank feeds its rows; gradients averaged before every update
//   }
//
//   $ mpirun -np 2 ./program    (as root add --allow-run-as-root; more ranks than cores: --oversubscribe)
//
// Every rank walks the same loader order and feeds rows [rank·rows, (rank+1)·rows) of each combined
// batch, so a run equals one process training on the combined batch (within float rounding) and is
// deterministic for a seed. A rank that dies or hangs makes the others throw Error after
// MpiOptions::timeout_seconds instead of waiting for ever (mpirun usually ends them sooner).
// Every rank holds the same parameters and optimizer state, so save checkpoints on rank 0 only and
// load them on every rank.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "meganeura/session.h"
#include "meganeura/train.h"

namespace meganeura::distributed {

struct MpiOptions {
  // A collective that has not finished after this long throws Error (another rank died or hung).
  // The environment variable MEGANEURA_MPI_TIMEOUT (seconds) overrides it.
  double timeout_seconds = 300;
  // Gradients are all-reduced in buckets of about this many bytes, each as soon as it is full, so the
  // all-reduce of one overlaps reading back the gradients of the next.
  size_t bucket_bytes = size_t{4} << 20;
  // Unless MEGANEURA_DEVICE is set, point it at the local_rank-th device of the preferred kind
  // (modulo their number), so the ranks of one host use different GPUs.
  bool select_device = true;
};

// True when this process was started by mpirun (or another MPI launcher), so that programs switch to
// data-parallel mode only then.
bool launched_by_mpi();

// The MPI side of data-parallel training: initializes MPI (unless already initialized) and
// finalizes it when destroyed (unless a collective failed, when finalizing could hang). One per
// process; MPI cannot be initialized again after it.
class MpiReducer final : public train::GradientReducer {
 public:
  explicit MpiReducer(MpiOptions options = {});
  ~MpiReducer() override;
  MpiReducer(const MpiReducer&) = delete;
  MpiReducer& operator=(const MpiReducer&) = delete;

  int rank() const override;
  int world_size() const override;
  int local_rank() const;  // rank among the processes of this host

  // Rank 0's parameters, by name, to every rank; Error if the ranks' models differ in size.
  void broadcast_parameters(Session& session) override;
  // The mean over the ranks, summed in double, in buckets of MpiOptions::bucket_bytes reduced on a
  // thread of their own while the caller goes on; finish_average() waits and writes the means back.
  void start_average(std::vector<double>& values) override;
  void finish_average() override;
  // Waits for every rank (with the same timeout as the other collectives). Like broadcast_parameters,
  // not between start_average and finish_average.
  void barrier();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace meganeura::distributed
