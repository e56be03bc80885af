#include "common/iso8601.h"

#include <stddef.h>

#include "common/err.h"

/* Days since 1970-01-01 → proleptic Gregorian date (H. Hinnant's
 * civil_from_days), valid for every int64 day count we accept. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (int64_t)doe - 719468;
}

/* Fixed-width decimal of V (W digits) into OUT. */
static void put_fixed(char *out, unsigned long v, int w)
{
	for (int i = w - 1; i >= 0; i--) {
		out[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* Seconds from 0001-01-01 to 1970-01-01, and to the end of 9999. */
#define TS_MIN_S (-62135596800LL)
#define TS_MAX_S (253402300799LL)

int iso8601_format_us(int64_t epoch_us, char out[32])
{
	int64_t s = epoch_us / 1000000, us = epoch_us % 1000000;

	if (us < 0) {
		us += 1000000;
		s -= 1;
	}
	if (s < TS_MIN_S || s > TS_MAX_S)
		return BZ_ERR_INVALID;
	int64_t days = s / 86400, sod = s % 86400;
	if (sod < 0) {
		sod += 86400;
		days -= 1;
	}
	int64_t y;
	unsigned m, d;
	civil_from_days(days, &y, &m, &d);
	/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" */
	put_fixed(out, (unsigned long)y, 4);
	out[4] = '-';
	put_fixed(out + 5, m, 2);
	out[7] = '-';
	put_fixed(out + 8, d, 2);
	out[10] = 'T';
	put_fixed(out + 11, (unsigned long)(sod / 3600), 2);
	out[13] = ':';
	put_fixed(out + 14, (unsigned long)(sod / 60 % 60), 2);
	out[16] = ':';
	put_fixed(out + 17, (unsigned long)(sod % 60), 2);
	out[19] = '.';
	put_fixed(out + 20, (unsigned long)us, 6);
	out[26] = 'Z';
	out[27] = '\0';
	return 0;
}

/* Reads exactly N digits at *P into *V and advances. */
static int digits(const char **p, int n, unsigned *v)
{
	unsigned x = 0;

	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return BZ_ERR_INVALID;
		x = x * 10 + (unsigned)(c - '0');
	}
	*p += n;
	*v = x;
	return 0;
}

int iso8601_parse_us(const char *s, int64_t *epoch_us)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y, mo, d, h = 0, mi = 0, se = 0, us = 0, oh = 0, om = 0;
	const char *p = s;
	int sign = 0;

	if (s == NULL || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d))
		return BZ_ERR_INVALID;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
		return BZ_ERR_INVALID;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return BZ_ERR_INVALID;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
			return BZ_ERR_INVALID;
		if (*p == ':') {
			p++;
			if (digits(&p, 2, &se))
				return BZ_ERR_INVALID;
			if (*p == '.' || *p == ',') {
				unsigned scale = 100000;
				p++;
				if (*p < '0' || *p > '9')
					return BZ_ERR_INVALID;
				/* Microsecond precision, as stored; further digits are truncated. */
				for (; *p >= '0' && *p <= '9'; p++) {
					us += (unsigned)(*p - '0') * scale;
					scale /= 10;
				}
			}
		}
		if (h > 23 || mi > 59 || se > 59)
			return BZ_ERR_INVALID;
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			sign = *p++ == '+' ? 1 : -1;
			if (digits(&p, 2, &oh))
				return BZ_ERR_INVALID;
			if (*p == ':')
				p++;
			if (digits(&p, 2, &om) || oh > 23 || om > 59)
				return BZ_ERR_INVALID;
		}
	}
	if (*p != '\0')
		return BZ_ERR_INVALID;
	int64_t secs = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 +
		       (int64_t)se - (int64_t)sign * ((int64_t)oh * 3600 + (int64_t)om * 60);
	*epoch_us = secs * 1000000 + (int64_t)us;
	return 0;
}
