/*
 * text.h — the one place that decides what text the server accepts and
 * stores: UTF-8 validity, display strings (names, hostnames, OS strings…),
 * UUIDs, and in-place trimming.
 */
#ifndef BZ_TEXT_H
#define BZ_TEXT_H

#include <stddef.h>

/* 1 if S[0..LEN) is well-formed UTF-8 (RFC 3629 §4: no overlong forms, no
 * surrogates, nothing above U+10FFFF) and holds no NUL byte, else 0. */
int text_utf8_valid(const char *s, size_t len);

/* Flags for text_check(). */
enum text_flags {
	TEXT_ALLOW_EMPTY = 1 << 0, /* "" (and all-blank) is acceptable */
};

/*
 * Checks that S is a display string: at most MAXLEN bytes, well-formed UTF-8,
 * no C0 or C1 control characters (tab and newline included), no DEL, no
 * bidirectional formatting characters (U+061C, U+200E/F, U+202A–U+202E,
 * U+2066–U+2069: Unicode UAX #9 "Trojan Source"), no line/paragraph
 * separators (U+2028/9), no byte-order mark (U+FEFF), and — unless FLAGS
 * has TEXT_ALLOW_EMPTY — not empty or only blanks (spaces and characters
 * that render as nothing: zero-width characters, joiners, variation
 * selectors, tags, soft hyphen, Hangul and Braille fillers). Returns 0, or
 * BZ_ERR_INVALID with *WHY (when non-NULL) set to a static phrase such as
 * "must not contain control characters" for a message naming the field.
 */
int text_check(const char *s, size_t maxlen, unsigned flags, const char **why);

/* Copies S (valid UTF-8) into OUT[OUTLEN] without its blanks (the code
 * points text_check() calls blank, plus ASCII whitespace): what is left is
 * what a password or name shows. OUT always ends in NUL; OUTLEN >= 1.
 * Returns the number of code points copied; a code point that would not
 * fit ends the copy. */
size_t text_strip_blanks(const char *s, char *out, size_t outlen);

/* 1 if S is a UUID in canonical 8-4-4-4-12 hex form (either case), else 0. */
int is_uuid(const char *s);

/* Strips leading and trailing ASCII whitespace from S in place; returns S
 * advanced past the leading blanks (inside the same buffer). */
char *text_trim(char *s);

/* Copies the NUL-terminated SRC (NULL: "") into DST of N bytes (N >= 1),
 * cut to fit and always NUL-terminated (snprintf semantics). For values
 * whose size the schema or input checks already bound (UUIDs, timestamps,
 * checked names), where a cut does not happen in practice. */
void text_copy(char *dst, size_t n, const char *src);

#endif
