/*
 * metrics_process.c — the process_* series every Prometheus client library
 * exports (CPU seconds, resident and virtual memory, open and maximum file
 * descriptors, start time), read from Linux's /proc at scrape time
 * (proc(5): /proc/self/stat fields 14, 15, 22, 23, 24; /proc/stat btime).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/metrics_internal.h"

struct proc_stat {
	unsigned long long utime, stime, starttime; /* clock ticks */
	unsigned long long vsize;		    /* bytes */
	long long rss;				    /* pages */
};

/* Reads /proc/self/stat into ST. Returns 0 or -1. */
static int read_stat(struct proc_stat *st)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name (field 2) is in parentheses and may hold spaces:
	 * fields are counted from the last ')'. */
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	p++;
	unsigned long long v[23] = {0};
	/* Fields 3 (state) .. 24 (rss): index 0 is field 3. */
	for (int i = 0; i < 22; i++) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return -1;
		if (i == 0) {
			p++; /* state: one character */
			continue;
		}
		char *end;
		v[i] = strtoull(p, &end, 10);
		if (end == p)
			return -1;
		p = end;
	}
	st->utime = v[11];
	st->stime = v[12];
	st->starttime = v[19];
	st->vsize = v[20];
	st->rss = (long long)v[21];
	return 0;
}

/* System boot time (epoch seconds) from /proc/stat, or 0. */
static long long boot_time(void)
{
	char line[256];
	long long bt = 0;
	FILE *f = fopen("/proc/stat", "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "btime ", 6) == 0) {
			bt = atoll(line + 6);
			break;
		}
	fclose(f);
	return bt;
}

/* Entries of /proc/self/fd, the directory's own descriptor excepted. */
static long long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long long n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

void metrics_put_process(struct metrics_buf *b)
{
	struct proc_stat st;
	struct rlimit rl;
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);

	if (read_stat(&st) != 0 || tick <= 0 || page <= 0)
		return; /* no /proc: the series are left out, never made up */
	metrics_put_header(b, "process_cpu_seconds_total", "counter",
			   "Total user and system CPU time spent in seconds.");
	metrics_buf_printf(b, "process_cpu_seconds_total %.2f\n",
			   (double)(st.utime + st.stime) / (double)tick);
	metrics_put_header(b, "process_resident_memory_bytes", "gauge",
			   "Resident memory size in bytes.");
	metrics_buf_printf(b, "process_resident_memory_bytes %lld\n", st.rss * page);
	metrics_put_header(b, "process_virtual_memory_bytes", "gauge",
			   "Virtual memory size in bytes.");
	metrics_buf_printf(b, "process_virtual_memory_bytes %llu\n", st.vsize);
	metrics_put_header(b, "process_open_fds", "gauge", "Number of open file descriptors.");
	metrics_buf_printf(b, "process_open_fds %lld\n", open_fds());
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		metrics_put_header(b, "process_max_fds", "gauge",
				   "Maximum number of open file descriptors.");
		metrics_buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}
	metrics_put_header(b, "process_start_time_seconds", "gauge",
			   "Start time of the process since unix epoch in seconds.");
	metrics_buf_printf(b, "process_start_time_seconds %.2f\n",
			   (double)boot_time() + (double)st.starttime / (double)tick);
}
