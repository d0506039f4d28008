# Writes IN as a C++ char array named SYMBOL into OUT (run at build time). Bytes are written as
# '\xNN' character literals so any byte, ASCII or not, fits a char without narrowing.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
file(WRITE ${OUT} "// Generated from ${IN}; do not edit.\nextern const char ${SYMBOL}[];\nconst char ${SYMBOL}[] = {${bytes} 0};\n")
