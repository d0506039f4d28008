// Chat templates: the Jinja text in tokenizer_config.json that lays out a conversation as one
// prompt string. This renders the subset of Jinja that ChatML-style templates use (see
// Tokenizer::apply_chat_template); other constructs raise an Error naming them.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "meganeura/tokenizer.h"

namespace meganeura::text {

// Renders `source` with the variables transformers passes to chat templates: `messages` (a list of
// {role, content}), `add_generation_prompt`, and `bos_token`/`eos_token` when known. Rendering
// uses transformers' settings: trim_blocks and lstrip_blocks on.
std::string render_chat_template(std::string_view source, std::span<const ChatMessage> messages,
                                 bool add_generation_prompt, const std::optional<std::string>& bos_token,
                                 const std::optional<std::string>& eos_token);

}  // namespace meganeura::text
