#include "agent/inventory.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"

/* Copies at most LEN-1 bytes of SRC (SRC_LEN bytes) into DST, NUL-terminated. */
static void copy_str(char *dst, size_t len, const char *src, size_t src_len)
{
	if (len == 0)
		return;
	if (src_len >= len)
		src_len = len - 1;
	memcpy(dst, src, src_len);
	dst[src_len] = '\0';
}

static void trim_newline(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

/* Unquotes an os-release value in place: "…" with \" \\ \$ \` escapes,
 * '…' literal, or bare. */
static void unquote(char *v)
{
	size_t n = strlen(v), r = 1, w = 0;

	if (n >= 2 && v[0] == '\'' && v[n - 1] == '\'') {
		memmove(v, v + 1, n - 2);
		v[n - 2] = '\0';
		return;
	}
	if (n < 2 || v[0] != '"' || v[n - 1] != '"')
		return;
	for (; r < n - 1; r++) {
		if (v[r] == '\\' && r + 1 < n - 1 && strchr("\"\\$`", v[r + 1]) != NULL)
			r++;
		v[w++] = v[r];
	}
	v[w] = '\0';
}

int agent_inventory_parse_os_release(const char *path, char *buf, size_t len)
{
	char line[512], name[256] = "", version[128] = "", pretty[256] = "";
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *eq = strchr(line, '=');

		trim_newline(line);
		if (eq == NULL || line[0] == '#')
			continue;
		*eq = '\0';
		char *v = eq + 1;
		unquote(v);
		if (strcmp(line, "PRETTY_NAME") == 0)
			copy_str(pretty, sizeof(pretty), v, strlen(v));
		else if (strcmp(line, "NAME") == 0)
			copy_str(name, sizeof(name), v, strlen(v));
		else if (strcmp(line, "VERSION_ID") == 0)
			copy_str(version, sizeof(version), v, strlen(v));
	}
	fclose(f);
	if (pretty[0] != '\0')
		copy_str(buf, len, pretty, strlen(pretty));
	else if (name[0] != '\0')
		snprintf(buf, len, "%s%s%s", name, version[0] ? " " : "", version);
	else
		copy_str(buf, len, "Linux", 5);
	return 0;
}

/* Parses a "Key:   12345 kB" LINE into *OUT, in bytes. Returns 1 if LINE is
 * KEY's, 0 if it is another key's, -EBADMSG if it is KEY's but the value is
 * not a number of kB that fits in 64 bits. */
static int meminfo_value(const char *line, const char *key, uint64_t *out)
{
	size_t kl = strlen(key);
	char *end;

	if (strncmp(line, key, kl) != 0 || line[kl] != ':')
		return 0;
	errno = 0;
	unsigned long long kb = strtoull(line + kl + 1, &end, 10);
	if (errno != 0 || end == line + kl + 1 || kb > UINT64_MAX / 1024)
		return -EBADMSG;
	*out = (uint64_t)kb * 1024;
	return 1;
}

int agent_inventory_parse_meminfo(const char *path, uint64_t *total_bytes,
				  uint64_t *available_bytes)
{
	char line[256];
	uint64_t total = 0, avail = 0, mfree = 0, buffers = 0, cached = 0;
	int have_total = 0, have_avail = 0, have_free = 0;
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		int r = 0;

		if ((r = meminfo_value(line, "MemTotal", &total)) != 0)
			have_total = r;
		else if ((r = meminfo_value(line, "MemAvailable", &avail)) != 0)
			have_avail = r;
		else if ((r = meminfo_value(line, "MemFree", &mfree)) != 0)
			have_free = r;
		else if (meminfo_value(line, "Buffers", &buffers) < 0 ||
			 meminfo_value(line, "Cached", &cached) < 0)
			r = -EBADMSG;
		if (r < 0) {
			fclose(f);
			return r;
		}
	}
	fclose(f);
	if (have_total != 1)
		return -EBADMSG;
	if (have_avail != 1) {
		if (have_free != 1)
			return -EBADMSG;
		avail = mfree + buffers + cached;
	}
	if (avail > total)
		avail = total;
	*total_bytes = total;
	*available_bytes = avail;
	return 0;
}

int agent_inventory_parse_loadavg(const char *path, double *l1, double *l5, double *l15)
{
	FILE *f = fopen(path, "re");
	int n;

	if (f == NULL)
		return -errno;
	n = fscanf(f, "%lf %lf %lf", l1, l5, l15);
	fclose(f);
	return n == 3 ? 0 : -EBADMSG;
}

int agent_inventory_parse_stat(const char *path, struct agent_cpu_sample *out)
{
	char line[512];
	unsigned long long v[8] = {0};
	FILE *f = fopen(path, "re");
	int rc = -EBADMSG;

	if (f == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "cpu ", 4) != 0)
			continue;
		/* user nice system idle iowait irq softirq steal; guest time is
		 * already counted in user, so it is not added again. */
		int n = sscanf(line + 4, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
			       &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
		if (n < 4)
			break;
		uint64_t total = 0;
		for (int i = 0; i < n; i++)
			total += v[i];
		out->idle = v[3] + v[4];
		out->total = total;
		rc = 0;
		break;
	}
	fclose(f);
	return rc;
}

int agent_inventory_parse_uptime(const char *path, uint64_t *uptime_s)
{
	FILE *f = fopen(path, "re");
	double up;
	int n;

	if (f == NULL)
		return -errno;
	n = fscanf(f, "%lf", &up);
	fclose(f);
	if (n != 1 || !(up >= 0) || up > 1e15)
		return -EBADMSG;
	*uptime_s = (uint64_t)up;
	return 0;
}

int agent_inventory_parse_cpuinfo(const char *path, char *buf, size_t len)
{
	static const char *keys[] = {"model name", "Processor", "cpu model", "Model"};
	char line[512];
	FILE *f = fopen(path, "re");

	if (len > 0)
		buf[0] = '\0';
	if (f == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *colon = strchr(line, ':');

		if (colon == NULL)
			continue;
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			size_t kl = strlen(keys[i]);
			if (strncmp(line, keys[i], kl) != 0 ||
			    strspn(line + kl, " \t") != (size_t)(colon - line) - kl)
				continue;
			char *v = colon + 1;
			v += strspn(v, " \t");
			trim_newline(v);
			copy_str(buf, len, v, strlen(v));
			fclose(f);
			return 0;
		}
	}
	fclose(f);
	return 0;
}

double agent_inventory_cpu_percent(const struct agent_cpu_sample *prev,
				   const struct agent_cpu_sample *cur)
{
	if (prev == NULL || prev->total == 0 || cur->total <= prev->total || cur->idle < prev->idle)
		return 0.0;
	uint64_t dt = cur->total - prev->total, di = cur->idle - prev->idle;
	if (di > dt)
		return 0.0;
	return 100.0 * (double)(dt - di) / (double)dt;
}

int agent_inventory_disk(const char *path, uint64_t *used_bytes, uint64_t *total_bytes)
{
	struct statvfs sv;

	if (statvfs(path, &sv) != 0)
		return -errno;
	uint64_t fr = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
	uint64_t blocks = sv.f_blocks, bfree = sv.f_bfree < sv.f_blocks ? sv.f_bfree : sv.f_blocks;
	if (fr != 0 && blocks > UINT64_MAX / fr)
		return -EOVERFLOW;
	*total_bytes = blocks * fr;
	*used_bytes = (blocks - bfree) * fr;
	return 0;
}

/* Replaces every non-ASCII byte with '?' if S is not valid UTF-8, so a
 * strange os-release or cpuinfo cannot make the JSON body unbuildable. */
static void make_utf8(char *s)
{
	json_t *t = json_string(s);

	if (t != NULL) {
		json_decref(t);
		return;
	}
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			*s = '?';
}

static void log_source_error(const char *source, int rc)
{
	log_debug("agent.inventory_unavailable", "source", source, "error", strerror(-rc), NULL);
}

int agent_inventory_parse_machine_id(const char *path, char *buf, size_t len)
{
	char line[64];
	FILE *f;
	size_t n;
	int rc = 0;

	if (len > 0)
		buf[0] = '\0';
	if (len < 33)
		return -EINVAL;
	if ((f = fopen(path, "re")) == NULL)
		return -errno;
	/* 32 hex digits and a newline; anything longer is not a machine id. */
	n = fread(line, 1, sizeof(line) - 1, f);
	if (ferror(f))
		rc = -EIO;
	fclose(f);
	if (rc != 0)
		return rc;
	line[n] = '\0';
	line[strcspn(line, "\n")] = '\0';
	if (strlen(line) != 32 || strspn(line, "0123456789abcdef") != 32)
		return -EBADMSG;
	memcpy(buf, line, 33);
	return 0;
}

void agent_inventory_collect_host(struct agent_host *h)
{
	struct utsname u;
	uint64_t avail, used;
	int rc;

	memset(h, 0, sizeof(*h));
	copy_str(h->os_type, sizeof(h->os_type), "linux", 5);
	if (gethostname(h->hostname, sizeof(h->hostname)) != 0)
		h->hostname[0] = '\0';
	h->hostname[sizeof(h->hostname) - 1] = '\0';
	if (uname(&u) == 0) {
		if (h->hostname[0] == '\0')
			copy_str(h->hostname, sizeof(h->hostname), u.nodename, strlen(u.nodename));
		copy_str(h->kernel, sizeof(h->kernel), u.release, strlen(u.release));
		copy_str(h->arch, sizeof(h->arch), u.machine, strlen(u.machine));
	}
	if (agent_inventory_parse_os_release("/etc/os-release", h->os_version,
					     sizeof(h->os_version)) != 0 &&
	    (rc = agent_inventory_parse_os_release("/usr/lib/os-release", h->os_version,
						   sizeof(h->os_version))) != 0) {
		log_source_error("os-release", rc);
		copy_str(h->os_version, sizeof(h->os_version), "Linux", 5);
	}
	if ((rc = agent_inventory_parse_cpuinfo("/proc/cpuinfo", h->cpu_model,
						sizeof(h->cpu_model))) != 0)
		log_source_error("/proc/cpuinfo", rc);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	h->cpu_count = n > 0 ? n : 1;
	if ((rc = agent_inventory_parse_meminfo("/proc/meminfo", &h->mem_total_bytes, &avail)) != 0)
		log_source_error("/proc/meminfo", rc);
	if ((rc = agent_inventory_disk("/", &used, &h->disk_total_bytes)) != 0)
		log_source_error("statvfs", rc);
	/* machine-id(5): /etc first, the D-Bus copy of older systems second. */
	if (agent_inventory_parse_machine_id("/etc/machine-id", h->machine_id,
					     sizeof(h->machine_id)) != 0 &&
	    (rc = agent_inventory_parse_machine_id("/var/lib/dbus/machine-id", h->machine_id,
						   sizeof(h->machine_id))) != 0)
		log_source_error("machine-id", rc);
	make_utf8(h->hostname);
	make_utf8(h->os_version);
	make_utf8(h->kernel);
	make_utf8(h->arch);
	make_utf8(h->cpu_model);
}

void agent_inventory_collect_metrics(struct agent_metrics *m, struct agent_cpu_sample *prev)
{
	struct agent_cpu_sample cur;
	uint64_t avail = 0;
	int rc;

	memset(m, 0, sizeof(*m));
	if ((rc = agent_inventory_parse_stat("/proc/stat", &cur)) == 0) {
		m->cpu_percent = agent_inventory_cpu_percent(prev, &cur);
		*prev = cur;
	} else {
		log_source_error("/proc/stat", rc);
	}
	if ((rc = agent_inventory_parse_meminfo("/proc/meminfo", &m->mem_total_bytes, &avail)) == 0)
		m->mem_used_bytes = m->mem_total_bytes - avail;
	else
		log_source_error("/proc/meminfo", rc);
	if ((rc = agent_inventory_disk("/", &m->disk_used_bytes, &m->disk_total_bytes)) != 0)
		log_source_error("statvfs", rc);
	if ((rc = agent_inventory_parse_loadavg("/proc/loadavg", &m->load1, &m->load5,
						&m->load15)) != 0)
		log_source_error("/proc/loadavg", rc);
	if ((rc = agent_inventory_parse_uptime("/proc/uptime", &m->uptime_s)) != 0)
		log_source_error("/proc/uptime", rc);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	m->cpu_count = n > 0 ? n : 1;
}
