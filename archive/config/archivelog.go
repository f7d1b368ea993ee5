package config

// The engines of archive_log.engine.
const (
	LogEngineJournal = "journal"
	LogEnginePOSIX   = "posix"
	LogEngineMySQL   = "mysql"
)

// ArchiveLog chooses where the archive's signed Merkle log (the one its
// receipts prove inclusion in) is kept.
type ArchiveLog struct {
	// Engine is journal (a Badger journal under data_dir/log, the
	// default), posix (a Tessera log in C2SP tlog-tiles layout under
	// data_dir/tlog) or mysql (a Tessera log in a MySQL or MariaDB
	// database).
	Engine string `yaml:"engine"`
	// MySQLDSNFile holds the database's DSN for mysql, one line, 0600
	// (it carries the password): "user:password@unix(/run/mysqld/mysqld.sock)/edgeseal_log".
	MySQLDSNFile string `yaml:"mysql_dsn_file"`
}

func (l *ArchiveLog) defaults() {
	if l.Engine == "" {
		l.Engine = LogEngineJournal
	}
}

func (l *ArchiveLog) validate(bad func(key, f string, args ...any)) {
	switch l.Engine {
	case LogEngineJournal, LogEnginePOSIX:
		if l.MySQLDSNFile != "" {
			bad("archive_log.mysql_dsn_file", "set only with engine mysql")
		}
	case LogEngineMySQL:
		if l.MySQLDSNFile == "" {
			bad("archive_log.mysql_dsn_file", "required with engine mysql")
		}
	default:
		bad("archive_log.engine", "%q: want journal, posix or mysql", l.Engine)
	}
}
