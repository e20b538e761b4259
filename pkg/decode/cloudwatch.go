package decode

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
)

// CloudWatch Logs subscription payloads are gzip-compressed JSON:
//
//	{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/f",
//	 "logStream":"2024/01/01/[$LATEST]abc","subscriptionFilters":["f"],
//	 "logEvents":[{"id":"3720...","timestamp":1700000000000,"message":"..."}]}
//
// Each log event becomes one document.

func (d *Decoder) decodeCloudWatch(rec *Record, dst []Doc) ([]Doc, bool, error) {
	if !isGzip(rec.Data) {
		return dst, false, &Failure{Reason: ReasonBadGzip, Detail: "data does not start with the gzip magic bytes"}
	}
	payload, f := d.inflate(rec.Data)
	if f != nil {
		return dst, false, f
	}
	env, f := d.envelope(payload)
	if f != nil {
		return dst, false, f
	}
	if env.control {
		return dst, true, nil
	}
	n0 := len(dst)
	b := env.events
	for i, k := skipSpace(b, 1), 0; i < len(b) && b[i] != ']'; k++ {
		doc, end, f := d.event(b, i, k, &env)
		if f != nil {
			return dst[:n0], false, f
		}
		dst = append(dst, doc)
		if i = skipSpace(b, end); i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	if len(dst) == n0 {
		// CloudWatch Logs sends no such message: say so rather than let a
		// record pass without a trace.
		return dst, false, &Failure{Reason: ReasonBadCloudWatchLogs, Detail: "a DATA_MESSAGE with no log events"}
	}
	return dst, false, nil
}

// inflate decompresses data into the Decoder's buffer, reading no more than
// MaxDecompressedBytes and never allocating past it. The buffer is kept for
// the next record, so a Decoder holds up to MaxDecompressedBytes.
func (d *Decoder) inflate(data []byte) ([]byte, *Failure) {
	d.gzSrc.Reset(data)
	var err error
	if d.gz == nil {
		d.gz, err = gzip.NewReader(&d.gzSrc)
	} else {
		err = d.gz.Reset(&d.gzSrc)
	}
	if err != nil {
		return nil, &Failure{Reason: ReasonBadGzip, Detail: "read gzip header: " + err.Error()}
	}
	limit := d.opts.MaxDecompressedBytes
	buf := d.inflated[:0]
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= limit {
				var probe [1]byte
				n, err := io.ReadFull(d.gz, probe[:])
				if n > 0 {
					d.inflated = buf[:0]
					return nil, &Failure{Reason: ReasonDecompressedTooLarge,
						Detail: fmt.Sprintf("gzip data inflates past the limit of %d bytes", limit)}
				}
				if err == io.EOF {
					break
				}
				d.inflated = buf[:0]
				return nil, &Failure{Reason: ReasonBadGzip, Detail: "inflate: " + err.Error()}
			}
			newCap := int64(max(2*cap(buf), 64<<10))
			newCap = min(newCap, limit)
			grown := make([]byte, len(buf), newCap)
			copy(grown, buf)
			buf = grown
		}
		n, err := d.gz.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			d.inflated = buf[:0]
			return nil, &Failure{Reason: ReasonBadGzip, Detail: "inflate: " + err.Error()}
		}
	}
	d.inflated = buf
	return buf, nil
}

// envelope is the outer object of a subscription payload; the byte slices
// are raw JSON values.
type envelope struct {
	control                    bool
	owner, logGroup, logStream []byte
	events                     []byte
}

func badShape(format string, args ...any) *Failure {
	return &Failure{Reason: ReasonBadCloudWatchLogs, Detail: fmt.Sprintf(format, args...)}
}

// envelope validates the payload as JSON and checks its shape.
func (d *Decoder) envelope(b []byte) (envelope, *Failure) {
	var env envelope
	var messageType, filters []byte
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return env, badShape("payload is not a JSON object")
	}
	// The envelope itself nests 3 deep (object, logEvents, event).
	maxDepth := max(d.opts.MaxDepth, 3)
	fail := func(code, off int) (envelope, *Failure) {
		return env, scanFailure(code, off, maxDepth, ReasonBadCloudWatchLogs)
	}
	if i = skipSpace(b, i+1); i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			next, key, escaped, code := scanKey(b, i)
			if code != scanOK {
				return fail(code, next)
			}
			start := skipSpace(b, next)
			end, code := skipValue(b, start, 1, maxDepth, &d.stack)
			if code != scanOK {
				return fail(code, end)
			}
			if escaped {
				d.kbuf = appendUnescaped(d.kbuf[:0], key)
				key = d.kbuf
			}
			v := b[start:end:end]
			switch string(key) {
			case "messageType":
				messageType = v
			case "owner":
				env.owner = v
			case "logGroup":
				env.logGroup = v
			case "logStream":
				env.logStream = v
			case "subscriptionFilters":
				filters = v
			case "logEvents":
				env.events = v
			}
			i = skipSpace(b, end)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			return fail(scanSyntax, i)
		}
	}
	if i = skipSpace(b, i); i != len(b) {
		return fail(scanSyntax, i)
	}
	var tmp [32]byte
	mt, ok := []byte(nil), false
	if len(messageType) > 0 && messageType[0] == '"' {
		mt, ok = AppendText(tmp[:0], messageType)
	}
	switch {
	case !ok:
		return env, badShape("messageType is missing or not a string")
	case string(mt) == "CONTROL_MESSAGE":
		env.control = true
		return env, nil
	case string(mt) != "DATA_MESSAGE":
		return env, badShape("unknown messageType (want DATA_MESSAGE or CONTROL_MESSAGE)")
	}
	for _, f := range []struct {
		name string
		v    []byte
	}{{"owner", env.owner}, {"logGroup", env.logGroup}, {"logStream", env.logStream}} {
		if f.v != nil && f.v[0] != '"' {
			return env, badShape("%s is not a string", f.name)
		}
	}
	if filters != nil && filters[0] != '[' {
		return env, badShape("subscriptionFilters is not an array")
	}
	if len(env.events) == 0 || env.events[0] != '[' {
		return env, badShape("logEvents is missing or not an array")
	}
	return env, nil
}

// event turns logEvents[k], at b[i] in the (valid) logEvents array, into a
// document and returns the index after the event.
func (d *Decoder) event(b []byte, i, k int, env *envelope) (Doc, int, *Failure) {
	if b[i] != '{' {
		return Doc{}, 0, badShape("logEvents[%d] is not an object", k)
	}
	var id, tsRaw, msg []byte
	for i++; ; {
		m, next, ok := nextMember(b, i)
		i = next
		if !ok {
			break
		}
		switch {
		case keyIs(m.key, m.escaped, "message"):
			msg = m.value
		case keyIs(m.key, m.escaped, "timestamp"):
			tsRaw = m.value
		case keyIs(m.key, m.escaped, "id"):
			id = m.value
		}
	}
	end := i + 1 // past the closing brace
	if msg == nil || msg[0] != '"' {
		return Doc{}, 0, badShape("logEvents[%d].message is missing or not a string", k)
	}
	if id != nil && id[0] != '"' {
		return Doc{}, 0, badShape("logEvents[%d].id is not a string", k)
	}
	if tsRaw == nil {
		return Doc{}, 0, badShape("logEvents[%d].timestamp is missing", k)
	}
	ts, ok := parseEpoch(tsRaw, true)
	if !ok {
		return Doc{}, 0, badShape("logEvents[%d].timestamp is not a number of epoch milliseconds", k)
	}

	mark := len(d.buf)
	inner := msg[1 : len(msg)-1]
	text := inner
	escaped := bytes.IndexByte(inner, '\\') >= 0
	if escaped {
		d.buf = appendUnescaped(d.buf, inner)
		text = d.buf[mark:len(d.buf):len(d.buf)]
	}
	st := d.newDoc()
	isObject := false
	obj := bytes.TrimPrefix(text, utf8BOM)
	if j := skipSpace(obj, 0); j < len(obj) && obj[j] == '{' {
		code, _ := d.members(obj, &st)
		isObject = code == scanOK
		if !isObject {
			d.fields = d.fields[:st.start]
			st = d.newDoc()
		}
	}
	if !isObject {
		value := msg
		if trimmed := trimNewline(text); escaped && len(trimmed) < len(text) {
			start := len(d.buf)
			d.buf = appendString(d.buf, trimmed)
			value = d.buf[start:len(d.buf):len(d.buf)]
		} else if escaped {
			d.buf = d.buf[:mark]
		}
		d.set(&st, "message", value)
	}
	d.set(&st, "cloudwatch", d.appendCloudWatch(env, id))
	doc := d.finish(&st, ts)
	doc.Timestamp = ts
	doc.Event = k
	doc.IsText = !isObject
	return doc, end, nil
}

// appendCloudWatch appends {"logGroup":..,"logStream":..,"owner":..,"id":..}
// (the members present) to the Decoder's buffer and returns it.
func (d *Decoder) appendCloudWatch(env *envelope, id []byte) []byte {
	start := len(d.buf)
	d.buf = append(d.buf, '{')
	for _, m := range [...]struct {
		key string
		v   []byte
	}{{`"logGroup":`, env.logGroup}, {`"logStream":`, env.logStream}, {`"owner":`, env.owner}, {`"id":`, id}} {
		if m.v == nil {
			continue
		}
		if len(d.buf) > start+1 {
			d.buf = append(d.buf, ',')
		}
		d.buf = append(d.buf, m.key...)
		d.buf = append(d.buf, m.v...)
	}
	d.buf = append(d.buf, '}')
	return d.buf[start:len(d.buf):len(d.buf)]
}
