// `meganeura loss-grad --model DIR --batch FILE --save FILE`: the mean next-token cross-entropy of
// batch_input_ids (int32 [B, T], labels shifted by one as transformers makes them) and the gradient of
// every parameter under its Hugging Face name, for checking training parity with another framework.
#include <iomanip>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "meganeura/error.h"
#include "meganeura/models/smollm2.h"
#include "meganeura/safetensors.h"
#include "meganeura/session.h"

namespace {

struct LossGradOptions {
  std::string model;
  std::string batch;
  std::string save;
};

void run_loss_grad(const LossGradOptions& options) {
  namespace models = meganeura::models;
  const auto checkpoint = models::SmolLM2Checkpoint::open_or_download(options.model);
  const auto batch_file = meganeura::SafeTensorsFile::open(options.batch);
  const meganeura::TensorInfo& info = batch_file.tensor("batch_input_ids");
  if (info.shape.size() != 2 || info.shape[0] <= 0 || info.shape[1] < 2)
    throw meganeura::Error(options.batch + ": batch_input_ids must be [B, T] with T >= 2, got " +
                           meganeura::format_shape(info.shape));
  const int64_t batch = info.shape[0], length = info.shape[1];
  const std::vector<int32_t> ids = batch_file.to_i32("batch_input_ids");
  for (int32_t id : ids)
    if (id < 0 || id >= checkpoint.config().vocab_size)
      throw meganeura::Error(options.batch + ": token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                             std::to_string(checkpoint.config().vocab_size) + ")");

  const meganeura::Graph graph = models::training_graph(checkpoint.config(), batch, length);
  // compute_gradients never applies the update; the session only needs an optimizer to exist.
  meganeura::Session session =
      meganeura::build_session(graph, {.optimizer = meganeura::OptimizerSpec::sgd(0.0)});
  checkpoint.upload(session);
  session.set_input("input_ids", std::span<const int32_t>(ids));
  const std::vector<int32_t> labels = models::next_token_labels(ids, batch, length);
  session.set_input("labels", std::span<const int32_t>(labels));
  session.compute_gradients();

  // The tied lm_head is the embedding parameter itself, so its gradient is already folded in.
  const std::vector<meganeura::ParameterSpec> parameters = meganeura::parameter_specs(graph);
  std::vector<std::vector<float>> gradients;
  gradients.reserve(parameters.size());
  std::vector<meganeura::TensorToSave> tensors;
  for (const auto& parameter : parameters) {
    gradients.push_back(session.read_gradient(parameter.name));
    tensors.push_back(meganeura::tensor_view(parameter.name, parameter.shape, gradients.back()));
  }
  meganeura::save_safetensors(options.save, tensors, {{"format", "pt"}});
  std::cout << std::setprecision(9) << "loss: " << session.read_loss() << "\n";
}

void setup_loss_grad(CLI::App& app) {
  auto options = std::make_shared<LossGradOptions>();
  auto* sub = app.add_subcommand("loss-grad", "Mean next-token loss of a batch and the gradient of every parameter");
  sub->add_option("--model", options->model, "Model folder or Hugging Face repository id")->required();
  sub->add_option("--batch", options->batch, "safetensors file holding batch_input_ids, int32 [B, T]")->required();
  sub->add_option("--save", options->save, "Where to write the gradients (safetensors, Hugging Face names)")->required();
  sub->callback([options] { run_loss_grad(*options); });
}

const bool registered = meganeura::cli::register_command("loss-grad", setup_loss_grad);

}  // namespace
