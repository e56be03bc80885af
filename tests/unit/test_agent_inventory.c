/* Unit tests for src/agent/inventory.c: parsers fed with the sample files in
 * tests/unit/data/agent/. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/inventory.h"

#define DATA(name) BZ_TEST_DATA_DIR "/agent/" name
/* cmocka's assert_float_equal works in float; these values are doubles. */
#define assert_near(a, b, eps) assert_true((a) - (b) <= (eps) && (b) - (a) <= (eps))

static void test_os_release_pretty_name(void **state)
{
	char buf[256];

	(void)state;
	assert_int_equal(agent_inventory_parse_os_release(DATA("os-release"), buf, sizeof(buf)), 0);
	/* Shell quoting removed, \" unescaped, $ kept literally. */
	assert_string_equal(buf, "Debian GNU/Linux 12 \"bookworm\" $weird");
}

static void test_os_release_fallback_and_truncation(void **state)
{
	char buf[256], small[8];

	(void)state;
	assert_int_equal(agent_inventory_parse_os_release(DATA("os-release-noprettyname"), buf,
							  sizeof(buf)),
			 0);
	assert_string_equal(buf, "Alpine Linux 3.19.1");
	assert_int_equal(agent_inventory_parse_os_release(DATA("os-release"), small, sizeof(small)),
			 0);
	assert_string_equal(small, "Debian ");
	assert_int_equal(agent_inventory_parse_os_release(DATA("does-not-exist"), buf, sizeof(buf)),
			 -ENOENT);
}

static void test_machine_id(void **state)
{
	char buf[33], small[16];

	(void)state;
	assert_int_equal(agent_inventory_parse_machine_id(DATA("machine-id"), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "0123456789abcdef0123456789abcdef");
	/* Not a machine id: refused, nothing returned. */
	assert_int_equal(agent_inventory_parse_machine_id(DATA("machine-id-uninitialized"), buf,
							  sizeof(buf)),
			 -EBADMSG);
	assert_string_equal(buf, "");
	assert_int_equal(agent_inventory_parse_machine_id(DATA("machine-id-upper"), buf,
							  sizeof(buf)),
			 -EBADMSG);
	assert_int_equal(agent_inventory_parse_machine_id(DATA("os-release"), buf, sizeof(buf)),
			 -EBADMSG);
	assert_int_equal(agent_inventory_parse_machine_id(DATA("does-not-exist"), buf, sizeof(buf)),
			 -ENOENT);
	assert_int_equal(agent_inventory_parse_machine_id(DATA("machine-id"), small, sizeof(small)),
			 -EINVAL);
}

static void test_meminfo(void **state)
{
	uint64_t total = 0, avail = 0;

	(void)state;
	assert_int_equal(agent_inventory_parse_meminfo(DATA("meminfo"), &total, &avail), 0);
	assert_true(total == 16318412ULL * 1024);
	assert_true(avail == 8159206ULL * 1024);
}

static void test_meminfo_without_memavailable(void **state)
{
	uint64_t total = 0, avail = 0;

	(void)state;
	assert_int_equal(agent_inventory_parse_meminfo(DATA("meminfo-old"), &total, &avail), 0);
	assert_true(total == 2048000ULL * 1024);
	/* MemFree + Buffers + Cached; SwapCached must not be taken for Cached. */
	assert_true(avail == (512000ULL + 128000 + 256000) * 1024);
	assert_int_equal(agent_inventory_parse_meminfo(DATA("meminfo-bad"), &total, &avail),
			 -EBADMSG);
	assert_int_equal(agent_inventory_parse_meminfo(DATA("does-not-exist"), &total, &avail),
			 -ENOENT);
}

static void test_loadavg(void **state)
{
	double l1 = -1, l5 = -1, l15 = -1;

	(void)state;
	assert_int_equal(agent_inventory_parse_loadavg(DATA("loadavg"), &l1, &l5, &l15), 0);
	assert_near(l1, 0.52, 1e-9);
	assert_near(l5, 1.25, 1e-9);
	assert_near(l15, 2.50, 1e-9);
	assert_int_equal(agent_inventory_parse_loadavg(DATA("loadavg-bad"), &l1, &l5, &l15),
			 -EBADMSG);
}

static void test_uptime(void **state)
{
	uint64_t up = 0;

	(void)state;
	assert_int_equal(agent_inventory_parse_uptime(DATA("uptime"), &up), 0);
	assert_true(up == 123456);
	assert_int_equal(agent_inventory_parse_uptime(DATA("loadavg-bad"), &up), -EBADMSG);
}

static void test_stat_and_cpu_percent(void **state)
{
	struct agent_cpu_sample a, b;

	(void)state;
	assert_int_equal(agent_inventory_parse_stat(DATA("stat-1"), &a), 0);
	assert_int_equal(agent_inventory_parse_stat(DATA("stat-2"), &b), 0);
	/* user nice system idle iowait irq softirq steal */
	assert_true(a.total == 1000 + 50 + 300 + 8000 + 100 + 10 + 20 + 5);
	assert_true(a.idle == 8000 + 100);
	assert_true(b.total == 1300 + 50 + 400 + 8500 + 100 + 10 + 35 + 5);
	/* busy = (915 - 500) / 915 */
	assert_near(agent_inventory_cpu_percent(&a, &b), 100.0 * 415.0 / 915.0, 1e-9);
	/* First sample, no progress, or counters going backwards: 0. */
	assert_near(agent_inventory_cpu_percent(NULL, &b), 0.0, 0);
	assert_near(agent_inventory_cpu_percent(&a, &a), 0.0, 0);
	assert_near(agent_inventory_cpu_percent(&b, &a), 0.0, 0);
	assert_int_equal(agent_inventory_parse_stat(DATA("loadavg"), &a), -EBADMSG);
}

static void test_cpuinfo(void **state)
{
	char buf[128];

	(void)state;
	assert_int_equal(agent_inventory_parse_cpuinfo(DATA("cpuinfo"), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz");
	/* No model line: empty string, not an error. */
	assert_int_equal(agent_inventory_parse_cpuinfo(DATA("loadavg"), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
}

static void test_collect_live_host(void **state)
{
	struct agent_host h;
	struct agent_metrics m;
	struct agent_cpu_sample prev = {0};

	(void)state;
	agent_inventory_collect_host(&h);
	assert_string_equal(h.os_type, "linux");
	assert_true(h.hostname[0] != '\0');
	assert_true(h.kernel[0] != '\0');
	assert_true(h.cpu_count >= 1);
	assert_true(h.mem_total_bytes > 0);
	agent_inventory_collect_metrics(&m, &prev);
	assert_near(m.cpu_percent, 0.0, 0); /* first sample */
	assert_true(prev.total > 0);
	assert_true(m.mem_used_bytes <= m.mem_total_bytes);
	assert_true(m.disk_used_bytes <= m.disk_total_bytes);
	assert_true(m.uptime_s > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_os_release_pretty_name),
		cmocka_unit_test(test_machine_id),
		cmocka_unit_test(test_os_release_fallback_and_truncation),
		cmocka_unit_test(test_meminfo),
		cmocka_unit_test(test_meminfo_without_memavailable),
		cmocka_unit_test(test_loadavg),
		cmocka_unit_test(test_uptime),
		cmocka_unit_test(test_stat_and_cpu_percent),
		cmocka_unit_test(test_cpuinfo),
		cmocka_unit_test(test_collect_live_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
