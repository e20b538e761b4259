package consumer

import (
	"fmt"
	"log/slog"
	"os"

	kcllogger "github.com/vmware/vmware-go-kcl-v2/logger"
)

// kclLogger adapts slog to the library's logger. The library's debug chatter
// stays at debug; its Fatalf exits like the library expects.
type kclLogger struct{ l *slog.Logger }

func (k kclLogger) Debugf(f string, a ...any) { k.l.Debug(fmt.Sprintf(f, a...)) }
func (k kclLogger) Infof(f string, a ...any)  { k.l.Debug(fmt.Sprintf(f, a...)) }
func (k kclLogger) Warnf(f string, a ...any)  { k.l.Warn(fmt.Sprintf(f, a...)) }
func (k kclLogger) Errorf(f string, a ...any) { k.l.Error(fmt.Sprintf(f, a...)) }
func (k kclLogger) Fatalf(f string, a ...any) {
	k.l.Error(fmt.Sprintf(f, a...))
	os.Exit(1)
}
func (k kclLogger) Panicf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (k kclLogger) WithFields(fields kcllogger.Fields) kcllogger.Logger {
	args := make([]any, 0, 2*len(fields))
	for key, v := range fields {
		args = append(args, key, v)
	}
	return kclLogger{k.l.With(args...)}
}
