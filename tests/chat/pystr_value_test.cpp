// The Python-semantics helpers under the interpreter: float repr, string repr, str methods on
// UTF-8, JSON text as json.dumps writes it, and the Value type's equality, ordering and truthiness.
// Expected strings are Python 3's output for the same input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>

#include "chat/pystr.h"
#include "chat/value.h"
#include "hearth/error.h"

namespace {

namespace py = hearth::chat::py;
using hearth::chat::Value;

TEST(PyStr, FloatReprIsPythons) {
  EXPECT_EQ(py::float_repr(1e-5), "1e-05");
  EXPECT_EQ(py::float_repr(123456789012345680.0), "1.2345678901234568e+17");
  EXPECT_EQ(py::float_repr(0.1), "0.1");
  EXPECT_EQ(py::float_repr(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(py::float_repr(1e16), "1e+16");
  EXPECT_EQ(py::float_repr(9999999999999998.0), "9999999999999998.0");
  EXPECT_EQ(py::float_repr(5e-324), "5e-324");
  EXPECT_EQ(py::float_repr(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(py::float_repr(-1.5), "-1.5");
  EXPECT_EQ(py::float_repr(100.0), "100.0");
  EXPECT_EQ(py::float_repr(0.0001), "0.0001");
  EXPECT_EQ(py::float_repr(0.00001234), "1.234e-05");
  EXPECT_EQ(py::float_repr(1e22), "1e+22");
  EXPECT_EQ(py::float_repr(9007199254740992.0), "9007199254740992.0");
  EXPECT_EQ(py::float_repr(-0.0), "-0.0");
  EXPECT_EQ(py::float_repr(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(py::float_repr(-std::numeric_limits<double>::infinity()), "-inf");
  EXPECT_EQ(py::float_repr(std::numeric_limits<double>::quiet_NaN()), "nan");
}

TEST(PyStr, FloatReprReadsBackExactlyOnRandomDoubles) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    uint64_t bits = rng();
    double x;
    std::memcpy(&x, &bits, sizeof x);
    if (!std::isfinite(x)) continue;
    const std::string s = py::float_repr(x);
    ASSERT_EQ(std::strtod(s.c_str(), nullptr), x) << s;
    // Fixed notation exactly for decimal exponents in [-4, 16), as Python.
    const int exp10 = x == 0 ? 0 : static_cast<int>(std::floor(std::log10(std::fabs(x))));
    if (exp10 > -4 && exp10 < 15) {
      EXPECT_EQ(s.find('e'), std::string::npos) << s;
    } else if (exp10 < -5 || exp10 > 16) {
      EXPECT_NE(s.find('e'), std::string::npos) << s;
    }
  }
}

TEST(PyStr, ReprQuotesAndEscapesAsPython) {
  EXPECT_EQ(py::repr("a'b"), "\"a'b\"");
  EXPECT_EQ(py::repr("a\"b'"), "'a\"b\\''");
  EXPECT_EQ(py::repr(std::string("\x00\x1f\x7f", 3)), "'\\x00\\x1f\\x7f'");
  // U+0080, NBSP, soft hyphen, ZWSP, LINE SEPARATOR, BOM, U+E0001 are not printable; é 日 🦙 are.
  EXPECT_EQ(py::repr("\xC2\x80\xC2\xA0\xC2\xAD\xE2\x80\x8B\xE2\x80\xA8\xEF\xBB\xBF\xF3\xA0\x80\x81\xC3\xA9\xE6\x97\xA5"
                     "\xF0\x9F\xA6\x99"),
            "'\\x80\\xa0\\xad\\u200b\\u2028\\ufeff\\U000e0001\xC3\xA9\xE6\x97\xA5\xF0\x9F\xA6\x99'");
}

TEST(PyStr, JsonQuoteAsJsonDumps) {
  EXPECT_EQ(py::json_quote("a\"\\/\n\r\t\b\f\x01", false), "\"a\\\"\\\\/\\n\\r\\t\\b\\f\\u0001\"");
  EXPECT_EQ(py::json_quote("\xC3\xA9\xE2\x80\xA8\x7f", false), "\"\xC3\xA9\xE2\x80\xA8\x7f\"");
  EXPECT_EQ(py::json_quote("\xC3\xA9\xF0\x9F\xA6\x99\x7f", true), "\"\\u00e9\\ud83e\\udd99\\u007f\"");
}

TEST(PyStr, SplitStripAndLines) {
  using V = std::vector<std::string>;
  EXPECT_EQ(py::split(" a  b ", std::nullopt, 1), (V{"a", "b "}));
  EXPECT_EQ(py::rsplit(" a  b ", std::nullopt, 1), (V{" a", "b"}));
  EXPECT_EQ(py::split("a,b,c", std::string(","), 0), (V{"a,b,c"}));
  EXPECT_EQ(py::split("abc", std::string("b"), -1), (V{"a", "c"}));
  EXPECT_EQ(py::rsplit("a b c", std::string(" "), 1), (V{"a b", "c"}));
  EXPECT_EQ(py::split("", std::nullopt, -1), V{});
  EXPECT_EQ(py::split("", std::string(","), -1), V{""});
  EXPECT_THROW(py::split("a", std::string(""), -1), hearth::Error);
  EXPECT_EQ(py::splitlines("a\xE2\x80\xA8" "b\xC2\x85" "c\rd\r\ne", false), (V{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(py::splitlines("a\n", true), V{"a\n"});
  EXPECT_EQ(py::strip("\xE3\x80\x80 x\xC2\xA0", std::nullopt, true, true), "x");
  EXPECT_EQ(py::strip("xyhixy", std::string("yx"), true, false), "hixy");
  EXPECT_EQ(py::strip("\xC3\xA9h\xC3\xA9", std::string("\xC3\xA9"), true, true), "h");
}

TEST(PyStr, FindCountReplaceByCodePoint) {
  EXPECT_EQ(py::find("\xC3\xA9" "a\xC3\xA9" "a", "a", std::nullopt, std::nullopt, false), 1);
  EXPECT_EQ(py::find("\xC3\xA9" "a\xC3\xA9" "a", "a", std::nullopt, std::nullopt, true), 3);
  EXPECT_EQ(py::find("abcabc", "c", int64_t{3}, std::nullopt, false), 5);
  EXPECT_EQ(py::find("abc", "c", int64_t{-1}, std::nullopt, false), 2);
  EXPECT_EQ(py::find("abc", "", int64_t{3}, std::nullopt, false), 3);
  EXPECT_EQ(py::find("abc", "", int64_t{4}, std::nullopt, false), -1);
  EXPECT_EQ(py::count("aaaa", "aa"), 2);
  EXPECT_EQ(py::count("\xC3\xA9\xC3\xA9", ""), 3);
  EXPECT_EQ(py::replace("a\xC3\xA9", "", "-", -1), "-a-\xC3\xA9-");
  EXPECT_EQ(py::replace("aaa", "a", "bb", 2), "bbbba");
}

TEST(PyStr, CaseMappingOfCommonScripts) {
  EXPECT_EQ(py::upper("stra\xC3\x9F" "e \xC3\xA9t\xC3\xA9 \xCF\x83\xCF\x82 \xD0\xBF\xD1\x80\xD0\xB8"),
            "STRASSE \xC3\x89T\xC3\x89 \xCE\xA3\xCE\xA3 \xD0\x9F\xD0\xA0\xD0\x98");
  EXPECT_EQ(py::lower("\xC3\x80\xC4\x80\xC5\xB9\xCE\x86\xD0\x81"), "\xC3\xA0\xC4\x81\xC5\xBA\xCE\xAC\xD1\x91");
  EXPECT_EQ(py::lower("\xC4\xB0"), "i\xCC\x87");  // İ -> i + combining dot, as Python
  EXPECT_EQ(py::title("hello WORLD 3rd"), "Hello World 3Rd");
  EXPECT_EQ(py::title("\xC3\x9F"), "Ss");
  EXPECT_EQ(py::capitalize("hELLO"), "Hello");
  EXPECT_EQ(py::length("a\xC3\xA9\xE6\x97\xA5\xF0\x9F\xA6\x99"), 4u);
  // An invalid byte counts as one code point and is kept as it was.
  EXPECT_EQ(py::length("a\xFF" "b"), 3u);
  EXPECT_EQ(py::upper("a\xFF" "b\xC3"), "A\xFF" "B\xC3");
  EXPECT_EQ(py::strip("\xFF x \xFF", std::string("\xFF"), true, true), " x ");
  EXPECT_EQ(py::repr("\xFF"), "'\\udcff'");
}

TEST(ChatValue, EqualityOrderingAndTruthinessArePythons) {
  EXPECT_TRUE(hearth::chat::equals(Value(int64_t{1}), Value(1.0)));
  EXPECT_TRUE(hearth::chat::equals(Value(true), Value(int64_t{1})));
  EXPECT_FALSE(hearth::chat::equals(Value::make_list({Value(1)}), Value::make_tuple({Value(1)})));
  EXPECT_TRUE(hearth::chat::equals(Value(), Value()));
  EXPECT_FALSE(hearth::chat::equals(Value(), Value::none()));
  EXPECT_TRUE(hearth::chat::less_than(Value("B"), Value("a")));
  EXPECT_TRUE(
      hearth::chat::less_than(Value::make_list({Value(1), Value("a")}), Value::make_list({Value(1), Value("b")})));
  EXPECT_TRUE(hearth::chat::less_than(Value::make_list({Value(1)}), Value::make_list({Value(1), Value(0)})));
  EXPECT_THROW(hearth::chat::less_than(Value(1), Value("a")), hearth::Error);
  EXPECT_FALSE(Value::make_list({}).truthy());
  EXPECT_TRUE(Value::make_list({}, hearth::chat::ListData::Kind::Generator).truthy());
  EXPECT_FALSE(Value(0.0).truthy());
  EXPECT_TRUE(Value::make_namespace().truthy());
  Value d = Value::make_dict();
  d.dict().set(Value(int64_t{1}), Value("a"));
  d.dict().set(Value(true), Value("b"));  // same key as 1: keeps the first key object
  ASSERT_EQ(d.dict().items.size(), 1u);
  EXPECT_EQ(d.repr(), "{1: 'b'}");
}

TEST(ChatValue, JsonRoundTripKeepsOrderAndNumberKinds) {
  const auto j =
      nlohmann::ordered_json::parse(R"({"z": 1, "a": [1.0, 2, -3, 18446744073709551615, "\u00e9"], "m": {}})");
  const Value v = hearth::chat::from_json(j);
  EXPECT_EQ(hearth::chat::to_json(v),
            "{\"z\": 1, \"a\": [1.0, 2, -3, 1.8446744073709552e+19, \"\xC3\xA9\"], \"m\": {}}");
  hearth::chat::JsonOptions o;
  o.indent = std::string(2, ' ');
  o.sort_keys = true;
  EXPECT_EQ(
      hearth::chat::to_json(v, o),
      "{\n  \"a\": [\n    1.0,\n    2,\n    -3,\n    1.8446744073709552e+19,\n    \"\xC3\xA9\"\n  ],\n  \"m\": {},\n"
      "  \"z\": 1\n}");
  EXPECT_THROW(hearth::chat::to_json(Value()), hearth::Error);
  Value keys = Value::make_dict();
  keys.dict().set(Value::make_tuple({Value(1)}), Value(1));
  EXPECT_THROW(hearth::chat::to_json(keys), hearth::Error);
  // A list that contains itself is a clean error, not a stack overflow.
  Value self = Value::make_list();
  self.list().items.push_back(self);
  EXPECT_THROW(hearth::chat::to_json(self), hearth::Error);
  self.list().items.clear();  // break the cycle so the list is freed
}

}  // namespace
