# Writes OUT: a C file defining `const char SYMBOL[]` with the bytes of IN
# (NUL-terminated) and `const size_t SYMBOL_len`. Bytes are emitted as hex so
# nothing needs escaping.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
file(WRITE ${OUT} "#include <stddef.h>\n\nconst char ${SYMBOL}[] = {${hex}0x00};\n"
                  "const size_t ${SYMBOL}_len = sizeof(${SYMBOL}) - 1;\n")
