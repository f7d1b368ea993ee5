package config

import "slices"

// The engines of archive_log.engine.
const (
	LogEngineJournal = "journal"
	LogEnginePOSIX   = "posix"
	LogEngineMySQL   = "mysql"
)

// ArchiveLog chooses where the archive's signed Merkle log (the one its
// receipts prove inclusion in) is kept.
type ArchiveLog struct {
	// Engine is posix (a Tessera log in C2SP tlog-tiles layout under
	// data_dir/tlog), journal (a Badger journal under data_dir/log) or
	// mysql (a Tessera log in a MySQL or MariaDB database). Unset: the
	// default, posix for a new data_dir and journal for one whose log is
	// in data_dir/log (archive.ResolveLogEngine).
	Engine string `yaml:"engine"`
	// MySQLDSNFile holds the database's DSN for mysql, one line, 0600
	// (it carries the password): "user:password@unix(/run/mysqld/mysqld.sock)/edgeseal_log".
	MySQLDSNFile string `yaml:"mysql_dsn_file"`
}

func (l *ArchiveLog) validate(bad func(key, f string, args ...any)) {
	validateEngine(bad, "archive_log", l.Engine, l.MySQLDSNFile, "posix, journal or mysql", "", LogEngineJournal, LogEnginePOSIX)
}

// validateEngine checks a section's engine and its MySQL DSN file: the
// file is required with mysql and refused with any of the other engines
// (local, the ones without a database).
func validateEngine(bad func(key, f string, args ...any), section, engine, dsnFile, want string, local ...string) {
	switch {
	case engine == LogEngineMySQL:
		if dsnFile == "" {
			bad(section+".mysql_dsn_file", "required with engine mysql")
		}
	case slices.Contains(local, engine):
		if dsnFile != "" {
			bad(section+".mysql_dsn_file", "set only with engine mysql")
		}
	default:
		bad(section+".engine", "%q: want %s", engine, want)
	}
}
