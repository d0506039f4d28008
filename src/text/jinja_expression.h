// The expression half of the Jinja subset that chat templates use: values (Python-like: strings,
// integers, booleans, None, lists, dicts, undefined), the lexer, and an evaluator for expressions
// with Jinja's operators, filters, tests and string methods. Statements live in chat_template.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace meganeura::text::jinja {

// Throws meganeura::Error for a construct outside the supported subset, saying what to do instead.
[[noreturn]] void fail(const std::string& what);

struct Value;
using List = std::vector<Value>;
using Dict = std::map<std::string, Value, std::less<>>;

struct Value {
  enum class Kind { Undefined, None, Bool, Int, String, List, Dict } kind = Kind::Undefined;
  bool boolean = false;
  int64_t integer = 0;
  std::string string;
  std::shared_ptr<List> list;  // shared, as Python objects are: `set ns.x = ...` mutates in place
  std::shared_ptr<Dict> dict;

  static Value none() { return make(Kind::None); }
  static Value of(bool b) {
    Value v = make(Kind::Bool);
    v.boolean = b;
    return v;
  }
  static Value of(int64_t i) {
    Value v = make(Kind::Int);
    v.integer = i;
    return v;
  }
  static Value of(std::string s) {
    Value v = make(Kind::String);
    v.string = std::move(s);
    return v;
  }
  static Value of(List items) {
    Value v = make(Kind::List);
    v.list = std::make_shared<List>(std::move(items));
    return v;
  }
  static Value of(Dict entries) {
    Value v = make(Kind::Dict);
    v.dict = std::make_shared<Dict>(std::move(entries));
    return v;
  }

 private:
  static Value make(Kind kind) {
    Value v;
    v.kind = kind;
    return v;
  }
};

bool truthy(const Value& v);
std::string to_text(const Value& v);  // as {{ v }} prints it
std::string strip(std::string_view s, bool left, bool right);

struct Token {
  enum class Kind { Name, String, Integer, Op, End } kind;
  std::string text;
  int64_t integer;
};

std::vector<Token> lex(std::string_view source);

// Variables, innermost scope last (a for loop pushes one, `set` writes to the innermost).
using Scopes = std::vector<Dict>;
Value lookup(const Scopes& scopes, std::string_view name);

// Evaluates `tokens` (from lex, ending in End) as one whole expression.
Value evaluate(const std::vector<Token>& tokens, const Scopes& scopes);

}  // namespace meganeura::text::jinja
