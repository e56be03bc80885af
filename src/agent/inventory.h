/*
 * inventory.h — what the agent reports about its host: identity (hostname,
 * OS, kernel, architecture, hardware) for enrolment and heartbeats, and
 * metrics (CPU, memory, disk, load, uptime) for each heartbeat.
 *
 * The parsers take a path so unit tests can feed them sample files; the
 * agent_inventory_collect_* functions use the real /proc and /etc files.
 * Parsers return 0, -errno if the file cannot be read, or -EBADMSG if it
 * does not contain what is expected. Byte counts are bytes, not kB.
 */
#ifndef BZ_AGENT_INVENTORY_H
#define BZ_AGENT_INVENTORY_H

#include <stddef.h>
#include <stdint.h>

struct agent_host {
	char hostname[256];
	char os_type[16];     /* always "linux" */
	char os_version[256]; /* PRETTY_NAME from os-release */
	char kernel[128];     /* uname release */
	char arch[64];	      /* uname machine */
	char cpu_model[256];  /* "" if unknown */
	long cpu_count;	      /* online CPUs */
	uint64_t mem_total_bytes;
	uint64_t disk_total_bytes; /* of "/" */
	char machine_id[33];	   /* machine-id(5), 32 hex digits; "" if unknown */
};

/* One /proc/stat "cpu" line reduced to two counters, in clock ticks. */
struct agent_cpu_sample {
	uint64_t idle;	/* idle + iowait */
	uint64_t total; /* user … steal */
};

struct agent_metrics {
	double cpu_percent; /* 0..100 since the previous sample */
	uint64_t mem_used_bytes;
	uint64_t mem_total_bytes;
	uint64_t disk_used_bytes;
	uint64_t disk_total_bytes;
	double load1, load5, load15;
	long cpu_count;
	uint64_t uptime_s;
};

/* Reads a machine-id(5) file: one line of 32 lower-case hex digits, into BUF
 * (at least 33 bytes). The server uses it as the device's hardware
 * fingerprint (re-enrolment of a suspended device). Returns 0; -EBADMSG if
 * the content is not a machine id ("uninitialized" included); -EINVAL if
 * LEN < 33; -errno from reading. BUF is "" on error. */
int agent_inventory_parse_machine_id(const char *path, char *buf, size_t len);

/* Reads PRETTY_NAME from an os-release file into BUF (LEN bytes), with shell
 * quoting removed; falls back to NAME + VERSION_ID, then to "Linux". */
int agent_inventory_parse_os_release(const char *path, char *buf, size_t len);

/* Reads MemTotal and MemAvailable (bytes) from a meminfo file. Kernels without
 * MemAvailable get MemFree + Buffers + Cached instead. */
int agent_inventory_parse_meminfo(const char *path, uint64_t *total_bytes,
				  uint64_t *available_bytes);

/* Reads the three load averages from a loadavg file. */
int agent_inventory_parse_loadavg(const char *path, double *l1, double *l5, double *l15);

/* Reads the aggregate "cpu" line of a /proc/stat file. */
int agent_inventory_parse_stat(const char *path, struct agent_cpu_sample *out);

/* Reads the first field of an uptime file, in whole seconds. */
int agent_inventory_parse_uptime(const char *path, uint64_t *uptime_s);

/* Reads the first "model name" (x86) or "Processor"/"cpu model" line of a
 * cpuinfo file into BUF; "" and 0 if there is none. */
int agent_inventory_parse_cpuinfo(const char *path, char *buf, size_t len);

/* Busy percentage between two samples, 0..100; 0 if PREV is NULL, if the
 * counters did not advance or went backwards. */
double agent_inventory_cpu_percent(const struct agent_cpu_sample *prev,
				   const struct agent_cpu_sample *cur);

/* Used and total bytes of the file system holding PATH (statvfs). */
int agent_inventory_disk(const char *path, uint64_t *used_bytes, uint64_t *total_bytes);

/* Fills H from the running host. Fields that cannot be read are left empty
 * or 0 (and logged at debug level); never fails. */
void agent_inventory_collect_host(struct agent_host *h);

/* Fills M from the running host. CPU percent is measured from *PREV (updated
 * to the new sample; its total is 0 before the first call, which gives 0 %).
 * Missing sources leave their fields 0; never fails. */
void agent_inventory_collect_metrics(struct agent_metrics *m, struct agent_cpu_sample *prev);

#endif
