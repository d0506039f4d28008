// A program outside the project, built against the installed package.
#include <meganeura/error.h>

#include <iostream>

int main() {
  if (meganeura::format_shape({2, 3}) != "[2, 3]") return 1;
  std::cout << "consumer ok\n";
  return 0;
}
