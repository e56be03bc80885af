/*
 * test_text.c — the one text validator (display strings), UTF-8 validity,
 * UUIDs and trimming, as tables of inputs and expected outcomes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/text.h"

static const struct {
	const char *in;
	int ok;
} utf8_cases[] = {
	{"", 1},
	{"plain ascii", 1},
	{"caf\xc3\xa9", 1},	 /* é */
	{"\xe2\x82\xac", 1},	 /* € */
	{"\xf0\x9f\x98\x80", 1}, /* U+1F600 */
	{"\xc0\xaf", 0},	 /* overlong '/' */
	{"\xe0\x80\xaf", 0},	 /* overlong, 3 bytes */
	{"\xed\xa0\x80", 0},	 /* surrogate U+D800 */
	{"\xf4\x90\x80\x80", 0}, /* above U+10FFFF */
	{"\xf5\x80\x80\x80", 0}, /* invalid lead byte */
	{"\x80", 0},		 /* lone continuation */
	{"\xc3", 0},		 /* truncated */
	{"ab\xe2\x82", 0},	 /* truncated at the end */
};

static void test_utf8_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(*utf8_cases); i++) {
		const char *s = utf8_cases[i].in;
		if (text_utf8_valid(s, strlen(s)) != utf8_cases[i].ok)
			fail_msg("case %zu: want %d", i, utf8_cases[i].ok);
	}
	/* An embedded NUL is refused even inside the given length. */
	assert_int_equal(text_utf8_valid("a\0b", 3), 0);
}

static const struct {
	const char *in;
	unsigned flags;
	int ok;
} display_cases[] = {
	{"Acme Corp", 0, 1},
	{"Z\xc3\xbcrich Office", 0, 1},
	{"\xe6\x9d\xb1\xe4\xba\xac", 0, 1}, /* 東京 */
	{"", 0, 0},			    /* empty */
	{"   ", 0, 0},			    /* blank */
	{"\xc2\xa0\xc2\xa0", 0, 0},	    /* only no-break spaces */
	/* Names that render as nothing are blank too (invisible or filler
	 * characters only), though each is fine next to visible text. */
	{"\xe2\x80\x8d", 0, 0},				/* U+200D ZERO WIDTH JOINER */
	{"\xe2\x80\x8b\xe2\x80\x8c", 0, 0},		/* U+200B ZWSP, U+200C ZWNJ */
	{"\xe2\x81\xa0", 0, 0},				/* U+2060 WORD JOINER */
	{"\xc2\xad", 0, 0},				/* U+00AD SOFT HYPHEN */
	{"\xcd\x8f", 0, 0},				/* U+034F COMBINING GRAPHEME JOINER */
	{"\xe3\x85\xa4", 0, 0},				/* U+3164 HANGUL FILLER */
	{"\xe1\x85\x9f", 0, 0},				/* U+115F HANGUL CHOSEONG FILLER */
	{"\xef\xbe\xa0", 0, 0},				/* U+FFA0 HALFWIDTH HANGUL FILLER */
	{"\xe2\xa0\x80", 0, 0},				/* U+2800 BRAILLE PATTERN BLANK */
	{"\xe2\x80\x83\xe2\x80\xaf", 0, 0},		/* U+2003 EM SPACE, U+202F */
	{"\xe1\x9a\x80", 0, 0},				/* U+1680 OGHAM SPACE MARK */
	{"\xef\xb8\x8f", 0, 0},				/* U+FE0F VARIATION SELECTOR-16 */
	{"\xf3\xa0\x80\xa1", 0, 0},			/* U+E0021 TAG EXCLAMATION MARK */
	{"\xe1\xa0\x8e", 0, 0},				/* U+180E MONGOLIAN VOWEL SEPARATOR */
	{"\xef\xbf\xb9x", 0, 1},			/* U+FFF9 before a letter */
	{"\xe0\xa4\x95\xe0\xa5\x8d\xe2\x80\x8d", 0, 1}, /* Devanagari + ZWJ */
	{"\xe2\x9d\xa4\xef\xb8\x8f", 0, 1},		/* U+2764 U+FE0F heart */
	{"", TEXT_ALLOW_EMPTY, 1},
	{"tab\there", 0, 0},
	{"new\nline", 0, 0},
	{"cr\rhere", 0, 0},
	{"esc\x1b"
	 "[31mred",
	 0, 0}, /* terminal escape */
	{"del\x7f", 0, 0},
	{"c1\xc2\x9b", 0, 0}, /* U+009B CSI */
	{"rlo\xe2\x80\xae"
	 "evil",
	 0, 0}, /* U+202E RIGHT-TO-LEFT OVERRIDE */
	{"lri\xe2\x81\xa6"
	 "x",
	 0, 0},			   /* U+2066 LEFT-TO-RIGHT ISOLATE */
	{"rlm\xe2\x80\x8f", 0, 0}, /* U+200F RIGHT-TO-LEFT MARK */
	{"alm\xd8\x9c", 0, 0},	   /* U+061C ARABIC LETTER MARK */
	{"ls\xe2\x80\xa8", 0, 0},  /* U+2028 LINE SEPARATOR */
	{"\xef\xbb\xbf"
	 "bom",
	 0, 0},		       /* U+FEFF */
	{"bad\xc0\xaf", 0, 0}, /* not UTF-8 */
};

static void test_display_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(display_cases) / sizeof(*display_cases); i++) {
		const char *why = NULL;
		int rc = text_check(display_cases[i].in, 200, display_cases[i].flags, &why);
		if (display_cases[i].ok && rc != 0)
			fail_msg("case %zu refused: %s", i, why);
		if (!display_cases[i].ok && (rc != BZ_ERR_INVALID || why == NULL))
			fail_msg("case %zu accepted", i);
	}
}

static void test_display_length(void **state)
{
	const char *why = NULL;

	(void)state;
	assert_int_equal(text_check("abcd", 4, 0, NULL), 0);
	assert_int_equal(text_check("abcde", 4, 0, &why), BZ_ERR_INVALID);
	assert_string_equal(why, "is too long");
	/* The limit is in bytes: "é" is two. */
	assert_int_equal(text_check("\xc3\xa9\xc3\xa9", 3, 0, NULL), BZ_ERR_INVALID);
}

static void test_uuid(void **state)
{
	(void)state;
	assert_true(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
	assert_true(is_uuid("123E4567-E89B-12D3-A456-426614174000"));
	assert_false(is_uuid("123e4567e89b12d3a456426614174000"));
	assert_false(is_uuid("123e4567-e89b-12d3-a456-42661417400"));
	assert_false(is_uuid("123e4567-e89b-12d3-a456-4266141740000"));
	assert_false(is_uuid("g23e4567-e89b-12d3-a456-426614174000"));
	assert_false(is_uuid(NULL));
}

static void test_trim(void **state)
{
	char a[] = "  \t hello world \r\n", b[] = "   ", c[] = "x";

	(void)state;
	assert_string_equal(text_trim(a), "hello world");
	assert_string_equal(text_trim(b), "");
	assert_string_equal(text_trim(c), "x");
}

static void test_strip_blanks(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(text_strip_blanks("pass word\t1234", out, sizeof(out)), 12);
	assert_string_equal(out, "password1234");
	assert_int_equal(text_strip_blanks("\xe2\x80\x8b\xc2\xa0"
					   "a\xc3\xa9",
					   out, sizeof(out)),
			 2);
	assert_string_equal(out, "a"
				 "\xc3\xa9");
	assert_int_equal(text_strip_blanks("   ", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	/* A code point that would not fit ends the copy, NUL-terminated. */
	assert_int_equal(text_strip_blanks("abc"
					   "\xc3\xa9",
					   out, 5),
			 3);
	assert_string_equal(out, "abc");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_table),     cmocka_unit_test(test_display_table),
		cmocka_unit_test(test_display_length), cmocka_unit_test(test_uuid),
		cmocka_unit_test(test_trim),	       cmocka_unit_test(test_strip_blanks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
