#include "text/chat_template.h"

#include <algorithm>
#include <vector>

#include "meganeura/error.h"
#include "text/jinja_expression.h"

namespace meganeura::text {
namespace {

using namespace jinja;

// ---- the template's tags ------------------------------------------------------------------------

struct Tag {
  enum class Kind { Text, Output, Statement } kind;
  std::string text;
};

size_t find_tag_end(std::string_view source, size_t pos, std::string_view close) {
  char quote = 0;
  for (; pos + 1 < source.size(); ++pos) {
    const char c = source[pos];
    if (quote) {
      if (c == '\\') ++pos;
      else if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (source.substr(pos, close.size()) == close) {
      return pos;
    }
  }
  fail("a tag is not closed with \"" + std::string(close) + "\"");
}

// Cuts the source into text and tags, applying whitespace control: "-" markers, and transformers'
// trim_blocks (drop the newline after a block tag) and lstrip_blocks (drop the indentation before it).
std::vector<Tag> split_tags(std::string_view source) {
  std::vector<Tag> tags;
  size_t pos = 0;
  bool strip_leading = false, drop_newline = false;
  while (pos <= source.size()) {
    size_t open = pos;
    while ((open = source.find('{', open)) != std::string_view::npos) {
      if (open + 1 < source.size() && (source[open + 1] == '{' || source[open + 1] == '%' || source[open + 1] == '#')) break;
      ++open;
    }
    std::string text(source.substr(pos, open == std::string_view::npos ? std::string_view::npos : open - pos));
    if (strip_leading) {
      text = strip(text, true, false);
    } else if (drop_newline) {
      if (text.starts_with("\r\n")) text.erase(0, 2);
      else if (text.starts_with("\n")) text.erase(0, 1);
    }
    if (open == std::string_view::npos) {
      if (!text.empty()) tags.push_back({Tag::Kind::Text, text});
      break;
    }
    const char kind = source[open + 1];
    size_t inner_begin = open + 2;
    const char marker = inner_begin < source.size() ? source[inner_begin] : 0;
    if (marker == '-') {
      text = strip(text, false, true);
    } else if (kind != '{' && marker != '+') {
      // Whether the tag starts its line is a question about the source, before trim_blocks took
      // the newline away.
      const std::string_view raw = source.substr(pos, open - pos);
      const size_t newline = raw.rfind('\n');
      const std::string_view line = newline == std::string_view::npos ? raw : raw.substr(newline + 1);
      const bool at_line_start = newline != std::string_view::npos || pos == 0;
      if (at_line_start && line.find_first_not_of(" \t") == std::string_view::npos)
        text.resize(text.size() - std::min(line.size(), text.size()));
    }
    if (marker == '-' || marker == '+') ++inner_begin;
    if (!text.empty()) tags.push_back({Tag::Kind::Text, text});
    const std::string_view close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    const size_t close_pos = kind == '#' ? source.find(close, inner_begin) : find_tag_end(source, inner_begin, close);
    if (close_pos == std::string_view::npos) fail("a comment is not closed with \"#}\"");
    const bool right_minus = close_pos > inner_begin && source[close_pos - 1] == '-';
    const std::string inner(source.substr(inner_begin, close_pos - inner_begin - (right_minus ? 1 : 0)));
    if (kind != '#') tags.push_back({kind == '{' ? Tag::Kind::Output : Tag::Kind::Statement, inner});
    strip_leading = right_minus;
    drop_newline = kind != '{' && !right_minus;
    pos = close_pos + 2;
  }
  return tags;
}

// ---- statements ---------------------------------------------------------------------------------

struct Node {
  enum class Kind { Text, Output, If, For, Set } kind = Kind::Text;
  std::string text;               // Text
  std::vector<Token> expression;  // Output, For (the iterable), Set (the value)
  std::vector<Token> filter;      // For: the optional `if` condition on items
  std::string target;             // For: loop variable; Set: variable
  std::string attribute;          // Set: `set ns.attribute = ...`
  std::vector<std::pair<std::vector<Token>, std::vector<Node>>> branches;  // If: condition and body
  std::vector<Node> body, otherwise;  // For: body and else; If: else
};

Node make_node(Node::Kind kind) {
  Node node;
  node.kind = kind;
  return node;
}

std::string statement_keyword(const Tag& tag) {
  const std::vector<Token> tokens = lex(tag.text);
  return tokens[0].kind == Token::Kind::Name ? tokens[0].text : "";
}

std::vector<Token> tokens_after(const std::vector<Token>& tokens, size_t from) {
  return std::vector<Token>(tokens.begin() + static_cast<std::ptrdiff_t>(from), tokens.end());
}

std::vector<Node> parse_block(const std::vector<Tag>& tags, size_t& i, std::initializer_list<std::string_view> terminators) {
  std::vector<Node> nodes;
  while (i < tags.size()) {
    const Tag& tag = tags[i];
    if (tag.kind == Tag::Kind::Text) {
      nodes.push_back(make_node(Node::Kind::Text));
      nodes.back().text = tag.text;
      ++i;
      continue;
    }
    const std::vector<Token> tokens = lex(tag.text);
    if (tag.kind == Tag::Kind::Output) {
      nodes.push_back(make_node(Node::Kind::Output));
      nodes.back().expression = tokens;
      ++i;
      continue;
    }
    const std::string keyword = tokens[0].kind == Token::Kind::Name ? tokens[0].text : "";
    for (std::string_view terminator : terminators)
      if (keyword == terminator) return nodes;
    ++i;
    if (keyword == "if") {
      Node node = make_node(Node::Kind::If);
      std::vector<Token> condition = tokens_after(tokens, 1);
      while (true) {
        std::vector<Node> body = parse_block(tags, i, {"elif", "else", "endif"});
        node.branches.emplace_back(std::move(condition), std::move(body));
        if (i >= tags.size()) fail("{% if %} without {% endif %}");
        const std::string next = statement_keyword(tags[i]);
        const std::vector<Token> next_tokens = lex(tags[i++].text);
        if (next == "elif") {
          condition = tokens_after(next_tokens, 1);
          continue;
        }
        if (next == "else") {
          node.otherwise = parse_block(tags, i, {"endif"});
          if (i >= tags.size()) fail("{% if %} without {% endif %}");
          ++i;
        }
        break;
      }
      nodes.push_back(std::move(node));
    } else if (keyword == "for") {
      Node node = make_node(Node::Kind::For);
      if (tokens[1].kind != Token::Kind::Name || tokens[2].kind != Token::Kind::Name || tokens[2].text != "in")
        fail("{% for %} other than 'for NAME in EXPRESSION'");
      node.target = tokens[1].text;
      node.expression = tokens_after(tokens, 3);
      // `for x in items if condition`: the condition filters items (a top-level `if`, no `else`).
      int depth = 0;
      for (size_t at = 0; at < node.expression.size(); ++at) {
        const Token& token = node.expression[at];
        if (token.kind == Token::Kind::Op && (token.text == "(" || token.text == "[")) ++depth;
        if (token.kind == Token::Kind::Op && (token.text == ")" || token.text == "]")) --depth;
        if (depth == 0 && token.kind == Token::Kind::Name && token.text == "if") {
          node.filter = tokens_after(node.expression, at + 1);
          node.expression.resize(at);
          node.expression.push_back({Token::Kind::End, "", 0});
          break;
        }
      }
      node.body = parse_block(tags, i, {"else", "endfor"});
      if (i >= tags.size()) fail("{% for %} without {% endfor %}");
      if (statement_keyword(tags[i++]) == "else") {
        node.otherwise = parse_block(tags, i, {"endfor"});
        if (i >= tags.size()) fail("{% for %} without {% endfor %}");
        ++i;
      }
      nodes.push_back(std::move(node));
    } else if (keyword == "set") {
      Node node = make_node(Node::Kind::Set);
      size_t at = 1;
      if (tokens[at].kind != Token::Kind::Name) fail("{% set %} other than 'set NAME = EXPRESSION'");
      node.target = tokens[at++].text;
      if (tokens[at].kind == Token::Kind::Op && tokens[at].text == "." && tokens[at + 1].kind == Token::Kind::Name) {
        node.attribute = tokens[at + 1].text;
        at += 2;
      }
      if (tokens[at].kind != Token::Kind::Op || tokens[at].text != "=") fail("{% set %} other than 'set NAME = EXPRESSION'");
      node.expression = tokens_after(tokens, at + 1);
      nodes.push_back(std::move(node));
    } else {
      fail("the statement {% " + (keyword.empty() ? tag.text : keyword) + " %}");
    }
  }
  return nodes;
}

void render(const std::vector<Node>& nodes, Scopes& scopes, std::string& out) {
  for (const Node& node : nodes) {
    switch (node.kind) {
      case Node::Kind::Text: out += node.text; break;
      case Node::Kind::Output: out += to_text(evaluate(node.expression, scopes)); break;
      case Node::Kind::Set: {
        Value value = evaluate(node.expression, scopes);
        if (node.attribute.empty()) {
          scopes.back()[node.target] = std::move(value);
        } else {
          const Value target = lookup(scopes, node.target);
          if (target.kind != Value::Kind::Dict) fail("'set " + node.target + "." + node.attribute + "' on something that is not a namespace");
          (*target.dict)[node.attribute] = std::move(value);
        }
        break;
      }
      case Node::Kind::If: {
        bool taken = false;
        for (const auto& [condition, body] : node.branches) {
          if (truthy(evaluate(condition, scopes))) {
            render(body, scopes, out);
            taken = true;
            break;
          }
        }
        if (!taken) render(node.otherwise, scopes, out);
        break;
      }
      case Node::Kind::For: {
        const Value iterable = evaluate(node.expression, scopes);
        List items;
        if (iterable.kind == Value::Kind::List) {
          items = *iterable.list;
        } else if (iterable.kind == Value::Kind::Dict) {
          for (const auto& [key, unused] : *iterable.dict) items.push_back(Value::of(key));
        } else if (iterable.kind != Value::Kind::Undefined && iterable.kind != Value::Kind::None) {
          fail("{% for %} over a value that is not a list");
        }
        if (!node.filter.empty()) {
          List kept;
          for (Value& item : items) {
            scopes.push_back(Dict{{node.target, item}});
            if (truthy(evaluate(node.filter, scopes))) kept.push_back(std::move(item));
            scopes.pop_back();
          }
          items = std::move(kept);
        }
        if (items.empty()) {
          render(node.otherwise, scopes, out);
          break;
        }
        const auto count = static_cast<int64_t>(items.size());
        for (int64_t index = 0; index < count; ++index) {
          Dict loop{{"index", Value::of(index + 1)},
                    {"index0", Value::of(index)},
                    {"revindex", Value::of(count - index)},
                    {"revindex0", Value::of(count - index - 1)},
                    {"first", Value::of(index == 0)},
                    {"last", Value::of(index == count - 1)},
                    {"length", Value::of(count)}};
          scopes.push_back(Dict{{node.target, items[static_cast<size_t>(index)]}, {"loop", Value::of(std::move(loop))}});
          render(node.body, scopes, out);
          scopes.pop_back();
        }
        break;
      }
    }
  }
}

}  // namespace

std::string render_chat_template(std::string_view source, std::span<const ChatMessage> messages,
                                 bool add_generation_prompt, const std::optional<std::string>& bos_token,
                                 const std::optional<std::string>& eos_token) {
  const std::vector<Tag> tags = split_tags(source);
  size_t i = 0;
  const std::vector<Node> nodes = parse_block(tags, i, {});
  if (i != tags.size()) fail("a stray {% " + statement_keyword(tags[i]) + " %}");

  List message_values;
  for (const ChatMessage& message : messages)
    message_values.push_back(Value::of(Dict{{"role", Value::of(message.role)}, {"content", Value::of(message.content)}}));
  Dict globals{{"messages", Value::of(std::move(message_values))}, {"add_generation_prompt", Value::of(add_generation_prompt)}};
  if (bos_token) globals["bos_token"] = Value::of(*bos_token);
  if (eos_token) globals["eos_token"] = Value::of(*eos_token);
  Scopes scopes{std::move(globals), Dict{}};
  std::string out;
  render(nodes, scopes, out);
  return out;
}

}  // namespace meganeura::text
