// The class-conditional DDPM recipe shared by examples/diffusion.cpp and `meganeura train-diffusion`:
// pad and scale the images, train the UNet to predict the noise, sample with DDIM and classifier-free
// guidance, draw the pictures and let the quick start's classifier judge the samples. Read top to
// bottom, it is the whole recipe.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>
#include <optional>
#include <iomanip>
#include <ostream>
#include <random>
#include <sstream>
#include <string>

#include "meganeura/error.h"
#include "meganeura/image.h"
#include "meganeura/models/diffusion.h"
#include "meganeura/nn.h"
#include "meganeura/session.h"
#include "meganeura/train.h"
#include "models/diffusion_classifier.h"
#include "models/diffusion_pictures.h"

namespace meganeura::models {
namespace {

constexpr int64_t kSide = 28;
constexpr int64_t kPaddedSide = 32;
constexpr int64_t kPad = (kPaddedSide - kSide) / 2;
constexpr int64_t kPixels = kPaddedSide * kPaddedSide;

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string duration_text(double seconds) {
  const int64_t whole = std::max<int64_t>(0, std::llround(seconds));
  std::ostringstream text;
  if (whole >= 60) text << whole / 60 << "m";
  text << whole % 60 << "s";
  return text.str();
}

// One image of the loader ([0, 1], 28×28) → 32×32 in [−1, 1], the border at the background value −1.
void pad_and_scale(const float* image, float* padded) {
  std::fill(padded, padded + kPixels, -1.0f);
  for (int64_t y = 0; y < kSide; ++y) {
    for (int64_t x = 0; x < kSide; ++x) {
      padded[(y + kPad) * kPaddedSide + x + kPad] = image[y * kSide + x] * 2.0f - 1.0f;
    }
  }
}

// What one training step feeds, made on the host while the GPU runs the previous step.
struct NoisyBatch {
  std::vector<float> noisy, noise, timesteps;
  std::vector<int32_t> classes;
};

class BatchMaker {
 public:
  BatchMaker(const data::Dataset& dataset, const NoiseSchedule& schedule, const DiffusionOptions& options)
      : loader_(dataset, {.batch_size = options.batch_size, .drop_last = true, .seed = options.seed}),
        schedule_(schedule),
        uncond_probability_(options.uncond_probability),
        rng_(options.seed * 0x9E3779B97F4A7C15ull + 1) {}

  int64_t batches_per_epoch() const { return loader_.batches_per_epoch(); }

  NoisyBatch next() {
    if (!loader_.next(batch_)) loader_.next(batch_);  // an epoch ended: the next one starts
    const int64_t rows = batch_.size;
    NoisyBatch out;
    std::vector<float> clean(static_cast<size_t>(rows * kPixels));
    out.noise.resize(clean.size());
    out.noisy.resize(clean.size());
    out.timesteps.resize(static_cast<size_t>(rows));
    out.classes.resize(static_cast<size_t>(rows));
    std::vector<int32_t> steps(static_cast<size_t>(rows));
    std::uniform_int_distribution<int32_t> timestep(0, static_cast<int32_t>(schedule_.steps() - 1));
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    std::normal_distribution<float> gaussian(0.0f, 1.0f);
    for (int64_t row = 0; row < rows; ++row) {
      pad_and_scale(batch_.images.data() + row * kSide * kSide, clean.data() + row * kPixels);
      steps[row] = timestep(rng_);
      out.timesteps[row] = static_cast<float>(steps[row]);
      out.classes[row] = coin(rng_) < uncond_probability_ ? static_cast<int32_t>(kNullClass) : batch_.labels[row];
    }
    for (float& value : out.noise) value = gaussian(rng_);
    schedule_.add_noise(clean, out.noise, steps, out.noisy);
    return out;
  }

 private:
  data::DataLoader loader_;
  const NoiseSchedule& schedule_;
  double uncond_probability_;
  std::mt19937_64 rng_;
  data::Batch batch_;
};

void require_mnist_shape(const data::Dataset& dataset, const char* which) {
  if (dataset.features != kSide * kSide) {
    throw Error(std::string("train_diffusion: the ") + which + " images have " + std::to_string(dataset.features) +
                " pixels; the recipe expects 28x28 = 784 (MNIST or Fashion-MNIST)");
  }
  for (int32_t label : dataset.labels) {
    if (label < 0 || label >= kDiffusionClasses) {
      throw Error(std::string("train_diffusion: a ") + which + " label is " + std::to_string(label) +
                  "; the recipe expects classes 0..9");
    }
  }
}

// Trains the session on host-made batches; returns the loss of every step.
std::vector<float> train_unet(Session& session, const data::Dataset& dataset, const NoiseSchedule& schedule,
                              const DiffusionOptions& options, std::ostream& out, int64_t& steps_taken) {
  BatchMaker maker(dataset, schedule, options);
  if (maker.batches_per_epoch() == 0) {
    throw Error("train_diffusion: " + std::to_string(dataset.size) + " training images make no batch of " +
                std::to_string(options.batch_size) + "; lower --batch-size");
  }
  const train::Schedule lr_schedule{
      .warmup_steps = std::min(options.warmup_steps, options.steps / 2), .cosine = true, .min_lr_ratio = 0.05};
  int64_t total = options.steps;
  std::vector<float> losses;
  losses.reserve(static_cast<size_t>(total));

  // The pace is measured from step kPaceFrom on: the first replays include one-time costs.
  constexpr int64_t kPaceFrom = 5;
  const Clock::time_point start = Clock::now();
  Clock::time_point pace_start = start;
  Clock::time_point interval_start = start;
  double interval_loss = 0;
  std::future<NoisyBatch> pending = std::async(std::launch::async, [&maker] { return maker.next(); });
  for (int64_t step = 0; step < total; ++step) {
    NoisyBatch batch = pending.get();
    if (step + 1 < total) pending = std::async(std::launch::async, [&maker] { return maker.next(); });
    session.set_learning_rate(train::learning_rate_at(lr_schedule, options.lr, step, total));
    session.set_input("noisy", batch.noisy);
    session.set_input("noise", batch.noise);
    session.set_input("timesteps", batch.timesteps);
    session.set_input("classes", batch.classes);
    session.step();
    const float loss = session.read_loss();
    if (!std::isfinite(loss)) {
      throw Error("train_diffusion: the loss became " + std::to_string(loss) + " at step " + std::to_string(step + 1) +
                  "; lower --lr");
    }
    losses.push_back(loss);
    interval_loss += loss;
    const int64_t done = step + 1;
    if (done == kPaceFrom) pace_start = Clock::now();

    // With a time budget, fit the step count to the measured pace (only ever fewer steps).
    const bool checkpoint = done % options.log_interval == 0 || done == total;
    if (options.train_seconds > 0 && done > kPaceFrom && (done == 4 * kPaceFrom || checkpoint)) {
      const double pace = seconds_since(pace_start) / static_cast<double>(done - kPaceFrom);
      const double left = options.train_seconds - seconds_since(start);
      const int64_t affordable = done + std::max<int64_t>(0, static_cast<int64_t>(left / pace));
      if (affordable < total) {
        out << "at " << std::fixed << std::setprecision(1) << 1000 * pace << " ms per step, " << affordable
            << " steps fit in --train-seconds " << options.train_seconds << " (planned " << total << ")\n"
            << std::defaultfloat;
        total = std::max(done, affordable);
      }
    }
    if (done % options.log_interval == 0 || done == total) {
      const double elapsed = seconds_since(start);
      const int64_t in_interval = done % options.log_interval == 0 ? options.log_interval
                                                                   : done % options.log_interval;
      const double interval_seconds = seconds_since(interval_start);
      const double steps_per_second = static_cast<double>(in_interval) / std::max(interval_seconds, 1e-9);
      out << "step " << done << "/" << total << "  loss " << std::fixed << std::setprecision(4)
          << interval_loss / static_cast<double>(in_interval) << "  lr " << std::scientific << std::setprecision(2)
          << train::learning_rate_at(lr_schedule, options.lr, step, total) << std::fixed << std::setprecision(1)
          << "  " << steps_per_second << " steps/s  elapsed " << duration_text(elapsed) << "  eta "
          << duration_text(static_cast<double>(total - done) / steps_per_second) << '\n'
          << std::defaultfloat << std::flush;
      interval_loss = 0;
      interval_start = Clock::now();
    }
  }
  steps_taken = total;
  return losses;
}

// DDIM with classifier-free guidance: the sampler's batch holds every image twice, first with its
// class, then with the null class; ε = ε_null + w·(ε_class − ε_null).
std::vector<float> sample_images(Session& sampler, const NoiseSchedule& schedule, const DiffusionOptions& options,
                                 const std::vector<int32_t>& classes) {
  const int64_t count = static_cast<int64_t>(classes.size());
  const bool guided = options.guidance_scale != 1.0;
  const int64_t batch = guided ? 2 * count : count;
  std::mt19937_64 rng(options.seed ^ 0x5DEECE66Dull);
  std::normal_distribution<float> gaussian(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(count * kPixels));
  for (float& value : x) value = gaussian(rng);

  std::vector<int32_t> batch_classes(classes);
  if (guided) batch_classes.resize(static_cast<size_t>(batch), static_cast<int32_t>(kNullClass));
  sampler.set_input("classes", batch_classes);
  std::vector<float> model_input(static_cast<size_t>(batch * kPixels));
  std::vector<float> eps(x.size());
  const std::vector<int32_t> timesteps = schedule.ddim_timesteps(options.sampling_steps);
  for (size_t i = 0; i < timesteps.size(); ++i) {
    std::copy(x.begin(), x.end(), model_input.begin());
    if (guided) std::copy(x.begin(), x.end(), model_input.begin() + count * kPixels);
    sampler.set_input("noisy", model_input);
    sampler.set_input("timesteps", std::vector<float>(static_cast<size_t>(batch), static_cast<float>(timesteps[i])));
    sampler.run();
    const std::vector<float> prediction = sampler.read_output(0);
    for (size_t j = 0; j < eps.size(); ++j) {
      eps[j] = guided ? prediction[j + x.size()] +
                            static_cast<float>(options.guidance_scale) * (prediction[j] - prediction[j + x.size()])
                      : prediction[j];
    }
    const int64_t previous = i + 1 < timesteps.size() ? timesteps[i + 1] : -1;
    schedule.ddim_step(x, eps, timesteps[i], previous, /*clip_x0=*/1.0);
  }
  return x;
}

// Multiply-adds ×2 of the convolutions, matrix products and attention in a forward graph: what
// the step costs, for the log (a training step costs about three times its forward pass).
double forward_flops(const Graph& graph) {
  double flops = 0;
  for (const Node& node : graph.nodes()) {
    const double outputs = static_cast<double>(num_elements(node.shape));
    if (node.op == Op::conv2d) {
      const Shape& weight = graph.node(node.inputs[1]).shape;
      flops += 2 * outputs * static_cast<double>(weight[1] * weight[2] * weight[3]);
    } else if (node.op == Op::matmul || node.op == Op::linear) {
      const Shape& a = graph.node(node.inputs[0]).shape;
      flops += 2 * outputs * static_cast<double>(node.attrs.transpose_a ? a[a.size() - 2] : a.back());
    } else if (node.op == Op::attention) {
      const Shape& key = graph.node(node.inputs[1]).shape;
      flops += 4 * outputs * static_cast<double>(key[key.size() - 2]);
    }
  }
  return flops;
}

Graph diffusion_graph(const UNetConfig& config, int64_t batch, bool training) {
  if (batch < 1) throw Error("diffusion graph: the batch must be at least 1, got " + std::to_string(batch));
  Graph graph;
  Tensor noisy = graph.input("noisy", {batch, 1, kPaddedSide, kPaddedSide});
  Tensor timesteps = graph.input("timesteps", {batch});
  Tensor classes = graph.input("classes", {batch}, DType::i32);
  // Unit-variance rows, like the token embeddings a text encoder would hand the cross-attention.
  nn::Embedding class_context(graph, "class_context", kDiffusionClasses + 1, config.cross_attention_dim,
                              Init::normal(0.0, 1.0));
  Tensor context = graph.reshape(class_context.forward(graph, classes), {batch, 1, config.cross_attention_dim});
  UNet2DConditionModel unet(graph, config);
  Tensor prediction = unet.forward(graph, noisy, timesteps, context);
  if (training) {
    graph.set_outputs({graph.mse_loss(prediction, graph.input("noise", {batch, 1, kPaddedSide, kPaddedSide}))});
  } else {
    graph.set_name(prediction, "noise_prediction");
    graph.set_outputs({prediction});
  }
  return graph;
}

}  // namespace

void validate(const DiffusionOptions& options) {
  auto fail = [](const std::string& what) { throw Error(what); };
  if (options.steps < 1) fail("--steps must be at least 1, got " + std::to_string(options.steps));
  if (options.batch_size < 1) fail("--batch-size must be at least 1, got " + std::to_string(options.batch_size));
  if (!(options.lr > 0) || options.lr > 10) fail("--lr must lie in (0, 10], got " + std::to_string(options.lr));
  if (options.weight_decay < 0) fail("--weight-decay must not be negative, got " + std::to_string(options.weight_decay));
  if (options.warmup_steps < 0) fail("--warmup-steps must not be negative, got " + std::to_string(options.warmup_steps));
  if (options.train_seconds < 0) {
    fail("--train-seconds must not be negative (0: no limit), got " + std::to_string(options.train_seconds));
  }
  if (options.diffusion_steps < 2) {
    fail("--diffusion-steps must be at least 2, got " + std::to_string(options.diffusion_steps));
  }
  if (options.sampling_steps < 1 || options.sampling_steps > options.diffusion_steps) {
    fail("--sampling-steps must lie in [1, " + std::to_string(options.diffusion_steps) + "], got " +
         std::to_string(options.sampling_steps));
  }
  if (!(options.uncond_probability >= 0) || options.uncond_probability >= 1) {
    fail("--uncond-probability must lie in [0, 1), got " + std::to_string(options.uncond_probability));
  }
  if (!(options.guidance_scale >= 0) || options.guidance_scale > 100) {
    fail("--guidance must lie in [0, 100], got " + std::to_string(options.guidance_scale));
  }
  if (options.guidance_scale != 1.0 && options.uncond_probability == 0) {
    fail("--guidance " + std::to_string(options.guidance_scale) +
         " needs an unconditional model: set --uncond-probability above 0 (e.g. 0.1) or --guidance 1");
  }
  if (options.samples_per_class < 1) {
    fail("--samples-per-class must be at least 1, got " + std::to_string(options.samples_per_class));
  }
  if (options.classifier_epochs < 1) {
    fail("--classifier-epochs must be at least 1, got " + std::to_string(options.classifier_epochs));
  }
  if (options.train_limit < 0) fail("--train-limit must not be negative, got " + std::to_string(options.train_limit));
  if (options.log_interval < 1) fail("--log-interval must be at least 1, got " + std::to_string(options.log_interval));
  if (options.block_out_channels.empty() || options.block_out_channels.size() > 4) {
    fail("--channels needs 1 to 4 block widths (32x32 images halve per block), got " +
         std::to_string(options.block_out_channels.size()));
  }
  if (options.out.empty()) fail("--out must name a folder");
  diffusion_unet_config(options).validate("--channels/--norm-groups/--heads/--context-dim");
}

UNetConfig diffusion_unet_config(const DiffusionOptions& options) {
  UNetConfig config;
  config.in_channels = 1;
  config.out_channels = 1;
  config.sample_size = kPaddedSide;
  config.block_out_channels = options.block_out_channels;
  const size_t blocks = options.block_out_channels.size();
  for (size_t i = 0; i < blocks; ++i) {
    // Attention at 32×32 costs the most and helps the least: the first block convolves only.
    config.down_block_types.push_back(i == 0 ? "DownBlock2D" : "CrossAttnDownBlock2D");
    config.up_block_types.push_back(i + 1 == blocks ? "UpBlock2D" : "CrossAttnUpBlock2D");
  }
  config.layers_per_block = 1;
  config.norm_num_groups = options.norm_num_groups;
  config.cross_attention_dim = options.cross_attention_dim;
  config.attention_head_dim.assign(blocks, options.attention_heads);
  return config;
}

Graph diffusion_training_graph(const UNetConfig& config, int64_t batch) { return diffusion_graph(config, batch, true); }

Graph diffusion_sampling_graph(const UNetConfig& config, int64_t batch) {
  return diffusion_graph(config, batch, false);
}

DiffusionResult train_diffusion(const DiffusionOptions& options, std::ostream& out) {
  validate(options);
  out << "loading " << options.data.string() << '\n';
  const data::MnistData mnist = data::load_mnist(options.data);
  return train_diffusion(options, mnist, out);
}

DiffusionResult train_diffusion(const DiffusionOptions& options, const data::MnistData& mnist, std::ostream& out) {
  validate(options);
  require_mnist_shape(mnist.train, "training");
  require_mnist_shape(mnist.test, "test");
  const Clock::time_point run_start = Clock::now();
  std::filesystem::create_directories(options.out);
  const data::Dataset train_set =
      options.train_limit > 0 && options.train_limit < mnist.train.size ? mnist.train.head(options.train_limit)
                                                                        : mnist.train;
  DiffusionResult result;

  // The judge first: a failure there should not cost a training run.
  result.classifier_test_accuracy = 0;
  std::filesystem::path classifier_path = options.classifier;
  if (classifier_path.empty()) {
    classifier_path = options.out / "classifier.safetensors";
    out << "training the quick start's 784-128-10 classifier for " << options.classifier_epochs << " epochs"
        << std::endl;
    train_classifier(train_set, options.classifier_epochs, options.seed, classifier_path, out);
  }
  SampleClassifier classifier(classifier_path, 100);
  {
    const std::vector<int32_t> predicted = classifier.classify(mnist.test.images);
    int64_t correct = 0;
    for (size_t i = 0; i < predicted.size(); ++i) correct += predicted[i] == mnist.test.labels[i];
    result.classifier_test_accuracy = static_cast<double>(correct) / static_cast<double>(predicted.size());
    out << "classifier (" << classifier_path.string() << "): test accuracy " << std::fixed << std::setprecision(4)
        << result.classifier_test_accuracy << " on " << predicted.size() << " real images, "
        << duration_text(seconds_since(run_start)) << " since the start" << std::defaultfloat << std::endl;
  }

  const UNetConfig config = diffusion_unet_config(options);
  const NoiseSchedule schedule(options.beta_schedule, options.diffusion_steps);
  const Graph training_graph = diffusion_training_graph(config, options.batch_size);
  int64_t parameter_count = 0;
  for (int32_t id : training_graph.parameters()) parameter_count += num_elements(training_graph.node(id).shape);
  const int64_t count = kDiffusionClasses * options.samples_per_class;
  const int64_t sampler_batch = options.guidance_scale != 1.0 ? 2 * count : count;
  const Graph sampling_graph = diffusion_sampling_graph(config, sampler_batch);

  std::optional<Session> trained;
  std::optional<Session> sampler;
  if (!options.unet.empty()) {
    out << "UNet: " << parameter_count << " parameters from " << options.unet.string() << "; no training"
        << std::endl;
    sampler.emplace(build_inference_session(sampling_graph));
    sampler->load_parameters(options.unet.string());
    result.parameters = options.unet;
  } else {
    const Clock::time_point build_start = Clock::now();
    // Clipping keeps the occasional large gradient of the attention layers from derailing a run.
    OptimizerSpec optimizer = OptimizerSpec::adamw(options.lr, options.weight_decay);
    optimizer.clip_global_norm = 1.0;
    Session& session = trained.emplace(build_session(training_graph, {.seed = options.seed, .optimizer = optimizer}));
    out << "UNet: blocks";
    for (int64_t width : config.block_out_channels) out << ' ' << width;
    out << ", " << parameter_count << " parameters, ~" << std::fixed << std::setprecision(1)
        << 3 * forward_flops(training_graph) / 1e9 << std::defaultfloat
        << " GFLOP per training step; session built in " << duration_text(seconds_since(build_start)) << " ("
        << session.dispatch_count() << " dispatches per step, " << std::fixed << std::setprecision(1)
        << static_cast<double>(session.memory_summary().total()) / (1 << 20) << std::defaultfloat
        << " MiB of GPU memory)\n"
        << "training: " << train_set.size << " images, " << options.steps << " steps of batch " << options.batch_size
        << ", AdamW lr " << options.lr << ", gradients clipped to norm 1" << std::endl;

    const Clock::time_point train_start = Clock::now();
    result.losses = train_unet(session, train_set, schedule, options, out, result.steps);
    result.train_seconds = seconds_since(train_start);
    out << "trained " << result.steps << " steps in " << duration_text(result.train_seconds) << '\n';
    result.parameters = options.out / "unet.safetensors";
    session.save_parameters(result.parameters.string());
    // The sampler reads the trained weights in place.
    sampler.emplace(build_inference_session(sampling_graph, {.share_parameters_with = &session}));
  }

  // Sampling: one row of the grid per class.
  for (int64_t i = 0; i < count; ++i) result.sample_classes.push_back(static_cast<int32_t>(i / options.samples_per_class));
  const Clock::time_point sample_start = Clock::now();
  const std::vector<float> samples = sample_images(*sampler, schedule, options, result.sample_classes);
  result.sampling_seconds = seconds_since(sample_start);
  out << "sampled " << count << " images with " << options.sampling_steps << " DDIM steps, guidance "
      << options.guidance_scale << ", in " << duration_text(result.sampling_seconds) << std::endl;

  result.samples_png = options.out / "samples.png";
  write_png(result.samples_png.string(),
            sample_grid(samples, kDiffusionClasses, options.samples_per_class, kPaddedSide, kPaddedSide, /*gap=*/2,
                        /*scale=*/2));
  out << "wrote " << result.samples_png.string() << " (one row per class)";
  if (!result.losses.empty()) {
    result.loss_png = options.out / "loss.png";
    write_png(result.loss_png.string(), loss_plot(result.losses));
    out << ", " << result.loss_png.string() << " and " << result.parameters.string();
  }
  out << '\n';

  // The check.
  result.predicted_classes = classifier.classify(classifier_inputs(samples, count));
  int64_t correct = 0;
  std::vector<int64_t> per_class(kDiffusionClasses, 0);
  for (int64_t i = 0; i < count; ++i) {
    if (result.predicted_classes[i] == result.sample_classes[i]) {
      ++correct;
      ++per_class[result.sample_classes[i]];
    }
  }
  result.sample_accuracy = static_cast<double>(correct) / static_cast<double>(count);
  out << "per class (right/asked):";
  for (int64_t c = 0; c < kDiffusionClasses; ++c) out << ' ' << c << ':' << per_class[c] << '/' << options.samples_per_class;
  out << "\ntotal time " << duration_text(seconds_since(run_start)) << '\n'
      << "sample accuracy: " << std::fixed << std::setprecision(4) << result.sample_accuracy << " (" << correct << "/"
      << count << " labelled as the requested class by the classifier; chance 0.1000)\n"
      << std::defaultfloat << std::flush;
  return result;
}

}  // namespace meganeura::models
