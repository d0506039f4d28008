#include "text/jinja_expression.h"

#include <algorithm>
#include <cctype>

#include "meganeura/error.h"

namespace meganeura::text::jinja {

void fail(const std::string& what) {
  throw Error("chat template: " + what + " (only the Jinja subset of ChatML-style templates is supported; "
              "format the prompt yourself for this model)");
}

namespace {

bool is_number(const Value& v) { return v.kind == Value::Kind::Int || v.kind == Value::Kind::Bool; }
int64_t number(const Value& v) { return v.kind == Value::Kind::Bool ? v.boolean : v.integer; }

bool equal(const Value& a, const Value& b) {
  if (is_number(a) && is_number(b)) return number(a) == number(b);
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::String: return a.string == b.string;
    case Value::Kind::List:
      if (a.list->size() != b.list->size()) return false;
      for (size_t i = 0; i < a.list->size(); ++i)
        if (!equal((*a.list)[i], (*b.list)[i])) return false;
      return true;
    case Value::Kind::Dict: return a.dict == b.dict;
    default: return true;  // Undefined, None
  }
}

// Byte offsets where each character of a UTF-8 string starts, then its size: template strings
// are Python strings, indexed and measured in characters.
std::vector<size_t> character_starts(const std::string& s) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) starts.push_back(i);
  starts.push_back(s.size());
  return starts;
}

}  // namespace

bool truthy(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return false;
    case Value::Kind::Bool: return v.boolean;
    case Value::Kind::Int: return v.integer != 0;
    case Value::Kind::String: return !v.string.empty();
    case Value::Kind::List: return !v.list->empty();
    case Value::Kind::Dict: return !v.dict->empty();
  }
  return false;
}

std::string to_text(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined: return "";
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return v.boolean ? "True" : "False";
    case Value::Kind::Int: return std::to_string(v.integer);
    case Value::Kind::String: return v.string;
    case Value::Kind::List:
    case Value::Kind::Dict: fail("printing a list or mapping");
  }
  return "";
}

std::string strip(std::string_view s, bool left, bool right) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  size_t begin = 0, end = s.size();
  if (left)
    while (begin < end && space(s[begin])) ++begin;
  if (right)
    while (end > begin && space(s[end - 1])) --end;
  return std::string(s.substr(begin, end - begin));
}

std::vector<Token> lex(std::string_view s) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      tokens.push_back({Token::Kind::Name, std::string(s.substr(i, j - i)), 0});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      if (j - i > 18) fail("the integer " + std::string(s.substr(i, j - i)) + " is too large");
      tokens.push_back({Token::Kind::Integer, "", std::stoll(std::string(s.substr(i, j - i)))});
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string value;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] != '\\' || j + 1 >= s.size()) {
          value += s[j];
          continue;
        }
        const char escaped = s[++j];
        value += escaped == 'n' ? '\n' : escaped == 't' ? '\t' : escaped == 'r' ? '\r' : escaped;
      }
      if (j >= s.size()) fail("a string literal is not closed");
      tokens.push_back({Token::Kind::String, value, 0});
      i = j + 1;
    } else {
      static constexpr std::string_view two_char[] = {"==", "!=", "<=", ">=", "//"};
      std::string op(1, c);
      for (std::string_view candidate : two_char)
        if (s.substr(i, 2) == candidate) op = candidate;
      if (op.size() == 1 && std::string_view("+-*/%~()[].,|:<>=").find(c) == std::string_view::npos) fail("unexpected character '" + op + "'");
      tokens.push_back({Token::Kind::Op, op, 0});
      i += op.size();
    }
  }
  tokens.push_back({Token::Kind::End, "", 0});
  return tokens;
}

Value lookup(const Scopes& scopes, std::string_view name) {
  for (auto it = scopes.rbegin(); it != scopes.rend(); ++it)
    if (const auto found = it->find(name); found != it->end()) return found->second;
  return Value();
}

namespace {

// Parses and evaluates one expression. `live` is false for the branch that short-circuiting skips:
// it is parsed for syntax but not evaluated, so it cannot fail on data it would never touch.
class Evaluator {
 public:
  Evaluator(const std::vector<Token>& tokens, const Scopes& scopes, size_t start = 0)
      : tokens_(tokens), scopes_(scopes), pos_(start) {}

  Value expression(bool live = true) {
    const size_t start = pos_;
    or_expression(false);
    if (!name_is("if")) {
      pos_ = start;
      return or_expression(live);
    }
    ++pos_;
    const Value condition = or_expression(live);
    Value result;
    if (name_is("else")) {
      ++pos_;
      result = expression(live && !truthy(condition));
    }
    const size_t end = pos_;
    if (live && truthy(condition)) {
      pos_ = start;
      result = or_expression(true);
    }
    pos_ = end;
    return result;
  }

  bool at_end() const { return tokens_[pos_].kind == Token::Kind::End; }
  const Token& peek() const { return tokens_[pos_]; }
  size_t position() const { return pos_; }

 private:
  bool op_is(std::string_view op) const { return tokens_[pos_].kind == Token::Kind::Op && tokens_[pos_].text == op; }
  bool name_is(std::string_view name) const { return tokens_[pos_].kind == Token::Kind::Name && tokens_[pos_].text == name; }
  void expect_op(std::string_view op) {
    if (!op_is(op)) fail("expected '" + std::string(op) + "' but found '" + tokens_[pos_].text + "'");
    ++pos_;
  }
  std::string expect_name() {
    if (tokens_[pos_].kind != Token::Kind::Name) fail("expected a name but found '" + tokens_[pos_].text + "'");
    return tokens_[pos_++].text;
  }

  Value or_expression(bool live) {
    Value v = and_expression(live);
    while (name_is("or")) {
      ++pos_;
      const bool decided = live && truthy(v);
      Value rhs = and_expression(live && !decided);
      if (live && !decided) v = rhs;
    }
    return v;
  }

  Value and_expression(bool live) {
    Value v = not_expression(live);
    while (name_is("and")) {
      ++pos_;
      const bool decided = live && !truthy(v);
      Value rhs = not_expression(live && !decided);
      if (live && !decided) v = rhs;
    }
    return v;
  }

  Value not_expression(bool live) {
    if (name_is("not")) {
      ++pos_;
      return Value::of(!truthy(not_expression(live)));
    }
    return comparison(live);
  }

  Value comparison(bool live) {
    Value v = concatenation(live);
    while (true) {
      std::string op;
      if (tokens_[pos_].kind == Token::Kind::Op &&
          (op_is("==") || op_is("!=") || op_is("<") || op_is(">") || op_is("<=") || op_is(">="))) {
        op = tokens_[pos_++].text;
      } else if (name_is("in")) {
        op = "in", ++pos_;
      } else if (name_is("not") && tokens_[pos_ + 1].kind == Token::Kind::Name && tokens_[pos_ + 1].text == "in") {
        op = "not in", pos_ += 2;
      } else {
        return v;
      }
      const Value rhs = concatenation(live);
      if (!live) continue;
      if (op == "==") v = Value::of(equal(v, rhs));
      else if (op == "!=") v = Value::of(!equal(v, rhs));
      else if (op == "in" || op == "not in") v = Value::of(contains(rhs, v) == (op == "in"));
      else v = Value::of(less_or_greater(v, rhs, op));
    }
  }

  static bool contains(const Value& container, const Value& item) {
    if (container.kind == Value::Kind::String && item.kind == Value::Kind::String)
      return container.string.find(item.string) != std::string::npos;
    if (container.kind == Value::Kind::List) {
      for (const Value& element : *container.list)
        if (equal(element, item)) return true;
      return false;
    }
    if (container.kind == Value::Kind::Dict && item.kind == Value::Kind::String) return container.dict->contains(item.string);
    if (container.kind == Value::Kind::Undefined) fail("'in' on an undefined value");
    fail("'in' on values of these types");
  }

  static bool less_or_greater(const Value& a, const Value& b, const std::string& op) {
    int order = 0;
    if (is_number(a) && is_number(b)) order = number(a) < number(b) ? -1 : number(a) > number(b) ? 1 : 0;
    else if (a.kind == Value::Kind::String && b.kind == Value::Kind::String) order = a.string.compare(b.string);
    else fail("comparing values of different types with '" + op + "'");
    if (op == "<") return order < 0;
    if (op == ">") return order > 0;
    if (op == "<=") return order <= 0;
    return order >= 0;
  }

  Value concatenation(bool live) {
    Value v = additive(live);
    while (op_is("~")) {
      ++pos_;
      const Value rhs = additive(live);
      if (live) v = Value::of(to_text(v) + to_text(rhs));
    }
    return v;
  }

  Value additive(bool live) {
    Value v = multiplicative(live);
    while (op_is("+") || op_is("-")) {
      const bool plus = tokens_[pos_++].text == "+";
      const Value rhs = multiplicative(live);
      if (!live) continue;
      if (plus && v.kind == Value::Kind::String && rhs.kind == Value::Kind::String) {
        v = Value::of(v.string + rhs.string);
      } else if (plus && v.kind == Value::Kind::List && rhs.kind == Value::Kind::List) {
        List joined = *v.list;
        joined.insert(joined.end(), rhs.list->begin(), rhs.list->end());
        v = Value::of(std::move(joined));
      } else if (is_number(v) && is_number(rhs)) {
        int64_t result = 0;
        if (plus ? __builtin_add_overflow(number(v), number(rhs), &result) : __builtin_sub_overflow(number(v), number(rhs), &result))
          fail("integer overflow");
        v = Value::of(result);
      } else {
        fail(std::string("'") + (plus ? "+" : "-") + "' on values of these types (undefined variable?)");
      }
    }
    return v;
  }

  Value multiplicative(bool live) {
    Value v = unary(live);
    while (op_is("*") || op_is("%") || op_is("//")) {
      const std::string op = tokens_[pos_++].text;
      const Value rhs = unary(live);
      if (!live) continue;
      if (!is_number(v) || !is_number(rhs)) fail("'" + op + "' on values that are not integers");
      if (op != "*" && number(rhs) == 0) fail("division by zero");
      const int64_t a = number(v), b = number(rhs);
      int64_t product = 0;
      if (op == "*" && __builtin_mul_overflow(a, b, &product)) fail("integer overflow");
      if (op != "*" && b == -1 && a == INT64_MIN) fail("integer overflow");
      v = Value::of(op == "*" ? product : op == "%" ? ((a % b) + b) % b : (a - (((a % b) + b) % b)) / b);
    }
    return v;
  }

  Value unary(bool live) {
    if (op_is("-")) {
      ++pos_;
      const Value v = unary(live);
      if (!live) return v;
      if (!is_number(v) || number(v) == INT64_MIN) fail("'-' on a value that is not a negatable integer");
      return Value::of(-number(v));
    }
    return postfix(live);
  }

  std::vector<Value> arguments(bool live, Dict* keywords = nullptr) {
    std::vector<Value> args;
    expect_op("(");
    while (!op_is(")")) {
      if (keywords && tokens_[pos_].kind == Token::Kind::Name && tokens_[pos_ + 1].kind == Token::Kind::Op &&
          tokens_[pos_ + 1].text == "=") {
        const std::string key = tokens_[pos_].text;
        pos_ += 2;
        (*keywords)[key] = expression(live);
      } else {
        args.push_back(expression(live));
      }
      if (!op_is(")")) expect_op(",");
    }
    ++pos_;
    return args;
  }

  Value postfix(bool live) {
    Value v = primary(live);
    while (true) {
      if (op_is(".")) {
        ++pos_;
        const std::string name = expect_name();
        if (op_is("(")) {
          const std::vector<Value> args = arguments(live);
          if (live) v = call_method(v, name, args);
        } else if (live) {
          v = attribute(v, name);
        }
      } else if (op_is("[")) {
        ++pos_;
        Value index, stop;
        bool slice = false;
        if (!op_is(":")) index = expression(live);
        if (op_is(":")) {
          slice = true;
          ++pos_;
          if (!op_is("]")) stop = expression(live);
        }
        expect_op("]");
        if (live) v = slice ? slice_of(v, index, stop) : item(v, index);
      } else if (op_is("|")) {
        ++pos_;
        const std::string name = expect_name();
        const std::vector<Value> args = op_is("(") ? arguments(live) : std::vector<Value>();
        if (live) v = filter(v, name, args);
      } else if (name_is("is")) {
        ++pos_;
        const bool negate = name_is("not");
        if (negate) ++pos_;
        const std::string test = expect_name();
        bool result = false;
        if (test == "defined") result = v.kind != Value::Kind::Undefined;
        else if (test == "undefined") result = v.kind == Value::Kind::Undefined;
        else if (test == "none") result = v.kind == Value::Kind::None;
        else if (test == "string") result = v.kind == Value::Kind::String;
        else if (test == "mapping") result = v.kind == Value::Kind::Dict;
        else if (test == "sequence" || test == "iterable") result = v.kind == Value::Kind::List || v.kind == Value::Kind::String;
        else fail("the test 'is " + test + "'");
        v = Value::of(result != negate);
      } else {
        return v;
      }
    }
  }

  static Value attribute(const Value& v, const std::string& name) {
    if (v.kind == Value::Kind::Dict) {
      const auto it = v.dict->find(name);
      return it == v.dict->end() ? Value() : it->second;
    }
    if (v.kind == Value::Kind::Undefined) fail("'." + name + "' of an undefined value");
    return Value();
  }

  static Value item(const Value& v, const Value& index) {
    if (v.kind == Value::Kind::Dict && index.kind == Value::Kind::String) return attribute(v, index.string);
    if ((v.kind == Value::Kind::List || v.kind == Value::Kind::String) && is_number(index)) {
      const std::vector<size_t> starts = v.kind == Value::Kind::String ? character_starts(v.string) : std::vector<size_t>();
      const int64_t size = v.kind == Value::Kind::List ? static_cast<int64_t>(v.list->size()) : static_cast<int64_t>(starts.size()) - 1;
      int64_t i = number(index);
      if (i < 0) i += size;
      if (i < 0 || i >= size) return Value();  // Jinja yields undefined, not an error
      if (v.kind == Value::Kind::List) return (*v.list)[static_cast<size_t>(i)];
      return Value::of(v.string.substr(starts[static_cast<size_t>(i)], starts[static_cast<size_t>(i) + 1] - starts[static_cast<size_t>(i)]));
    }
    if (v.kind == Value::Kind::Undefined) fail("subscript of an undefined value");
    fail("subscript of a value of this type with this index");
  }

  static Value slice_of(const Value& v, const Value& start, const Value& stop) {
    if (v.kind != Value::Kind::List && v.kind != Value::Kind::String) fail("slicing a value that is not a list or string");
    const std::vector<size_t> starts = v.kind == Value::Kind::String ? character_starts(v.string) : std::vector<size_t>();
    const int64_t size = v.kind == Value::Kind::List ? static_cast<int64_t>(v.list->size()) : static_cast<int64_t>(starts.size()) - 1;
    auto bound = [&](const Value& b, int64_t fallback) {
      if (b.kind == Value::Kind::Undefined || b.kind == Value::Kind::None) return fallback;
      if (!is_number(b)) fail("a slice bound that is not an integer");
      int64_t i = number(b);
      if (i < 0) i += size;
      return std::clamp<int64_t>(i, 0, size);
    };
    const int64_t begin = bound(start, 0), end = std::max(begin, bound(stop, size));
    if (v.kind == Value::Kind::String) {
      const size_t from = starts[static_cast<size_t>(begin)], to = starts[static_cast<size_t>(end)];
      return Value::of(v.string.substr(from, to - from));
    }
    return Value::of(List(v.list->begin() + begin, v.list->begin() + end));
  }

  static Value call_method(const Value& v, const std::string& name, const std::vector<Value>& args) {
    if (v.kind == Value::Kind::String) {
      if (name == "strip" && args.empty()) return Value::of(strip(v.string, true, true));
      if (name == "lstrip" && args.empty()) return Value::of(strip(v.string, true, false));
      if (name == "rstrip" && args.empty()) return Value::of(strip(v.string, false, true));
      if (name == "upper" || name == "lower") return filter(v, name, args);
      if ((name == "startswith" || name == "endswith") && args.size() == 1 && args[0].kind == Value::Kind::String)
        return Value::of(name == "startswith" ? v.string.starts_with(args[0].string) : v.string.ends_with(args[0].string));
    }
    if (v.kind == Value::Kind::Dict && name == "get" && !args.empty() && args.size() <= 2 && args[0].kind == Value::Kind::String) {
      const Value found = attribute(v, args[0].string);
      return found.kind != Value::Kind::Undefined ? found : args.size() == 2 ? args[1] : Value::none();
    }
    fail("the method '." + name + "()' on this value");
  }

  static Value filter(const Value& v, const std::string& name, const std::vector<Value>& args) {
    if (!args.empty()) fail("the filter '|" + name + "' with arguments");
    if (name == "trim") return Value::of(strip(to_text(v), true, true));
    if (name == "string") return Value::of(to_text(v));
    if (name == "upper" || name == "lower") {  // ASCII letters only: role names, not prose
      std::string s = to_text(v);
      for (char& c : s) c = static_cast<char>(name == "upper" ? std::toupper(static_cast<unsigned char>(c)) : std::tolower(static_cast<unsigned char>(c)));
      return Value::of(std::move(s));
    }
    if (name == "length" || name == "count") {
      if (v.kind == Value::Kind::List) return Value::of(static_cast<int64_t>(v.list->size()));
      if (v.kind == Value::Kind::String) return Value::of(static_cast<int64_t>(character_starts(v.string).size() - 1));
      if (v.kind == Value::Kind::Dict) return Value::of(static_cast<int64_t>(v.dict->size()));
      fail("'|length' of a value that has no length");
    }
    if ((name == "first" || name == "last") && v.kind == Value::Kind::List) {
      if (v.list->empty()) return Value();
      return name == "first" ? v.list->front() : v.list->back();
    }
    fail("the filter '|" + name + "'");
  }

  Value primary(bool live) {
    const Token& token = tokens_[pos_];
    switch (token.kind) {
      case Token::Kind::String: {
        std::string s;
        while (tokens_[pos_].kind == Token::Kind::String) s += tokens_[pos_++].text;  // adjacent literals join
        return Value::of(std::move(s));
      }
      case Token::Kind::Integer: ++pos_; return Value::of(token.integer);
      case Token::Kind::End: fail("an expression ends too early");
      case Token::Kind::Op:
        if (op_is("(")) {
          ++pos_;
          Value v = expression(live);
          expect_op(")");
          return v;
        }
        if (op_is("[")) {
          ++pos_;
          List items;
          while (!op_is("]")) {
            items.push_back(expression(live));
            if (!op_is("]")) expect_op(",");
          }
          ++pos_;
          return Value::of(std::move(items));
        }
        fail("unexpected '" + token.text + "'");
      case Token::Kind::Name: break;
    }
    const std::string name = tokens_[pos_++].text;
    if (name == "true" || name == "True") return Value::of(true);
    if (name == "false" || name == "False") return Value::of(false);
    if (name == "none" || name == "None") return Value::none();
    if (op_is("(")) {
      Dict keywords;
      const std::vector<Value> args = arguments(live, &keywords);
      if (!live) return Value();
      if (name == "raise_exception") {
        throw Error("chat template refused the conversation: " + (args.empty() ? std::string() : to_text(args[0])));
      }
      if (name == "namespace" && args.empty()) return Value::of(std::move(keywords));
      fail("the function '" + name + "()'");
    }
    return live ? lookup(scopes_, name) : Value();
  }

  const std::vector<Token>& tokens_;
  const Scopes& scopes_;
  size_t pos_;
};

}  // namespace

Value evaluate(const std::vector<Token>& tokens, const Scopes& scopes) {
  Evaluator evaluator(tokens, scopes);
  Value v = evaluator.expression();
  if (!evaluator.at_end()) fail("unexpected '" + evaluator.peek().text + "' after an expression");
  return v;
}

}  // namespace meganeura::text::jinja
