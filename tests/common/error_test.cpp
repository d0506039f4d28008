#include <gtest/gtest.h>

#include "meganeura/error.h"

TEST(Error, FormatShapeListsDimensions) {
  EXPECT_EQ(meganeura::format_shape({32, 784}), "[32, 784]");
  EXPECT_EQ(meganeura::format_shape({}), "[]");
}

TEST(Error, SubclassesAreCaughtAsError) {
  try {
    throw meganeura::OutOfMemoryError("allocating 4 GiB on a 2 GiB heap");
  } catch (const meganeura::Error& e) {
    EXPECT_STREQ(e.what(), "allocating 4 GiB on a 2 GiB heap");
    return;
  }
  FAIL() << "OutOfMemoryError was not caught as meganeura::Error";
}
