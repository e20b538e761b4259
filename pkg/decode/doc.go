package decode

import "bytes"

// Get returns the raw JSON value of a top-level key. A dotted path "a.b.c"
// descends into nested objects when no key matches it whole; at every level
// a key that holds dots itself is matched too.
func (d *Doc) Get(key string) ([]byte, bool) {
	for _, f := range d.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	for _, f := range d.Fields {
		if n := len(f.Key); len(key) > n && key[n] == '.' && key[:n] == f.Key {
			if v, ok := lookup(f.Value, key[n+1:]); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// lookup finds path in the raw object obj.
func lookup(obj []byte, path string) ([]byte, bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	var tmp [64]byte
	for i++; ; {
		m, next, ok := nextMember(obj, i)
		if !ok {
			return nil, false
		}
		i = next
		k := m.key
		if m.escaped {
			k = appendUnescaped(tmp[:0], k)
		}
		if string(k) == path {
			return m.value, true
		}
		if n := len(k); len(path) > n && path[n] == '.' && path[:n] == string(k) {
			if v, ok := lookup(m.value, path[n+1:]); ok {
				return v, true
			}
		}
	}
}

// Text returns the value as text: a JSON string unescaped, a number or
// boolean as its literal. It reports false for objects, arrays, null and
// missing keys. Dotted paths work as in Get.
func (d *Doc) Text(key string) (string, bool) {
	raw, ok := d.Get(key)
	if !ok {
		return "", false
	}
	if len(raw) >= 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var tmp [128]byte
	b, ok := AppendText(tmp[:0], raw)
	if !ok {
		return "", false
	}
	return string(b), true
}

// Set replaces the value of a top-level field, or appends the field. rawJSON
// must be one valid JSON value, and key must not be a reserved key
// ("@timestamp", "team", "kinesis").
func (d *Doc) Set(key string, rawJSON []byte) {
	for i := range d.Fields {
		if d.Fields[i].Key == key {
			d.Fields[i].Value = rawJSON
			return
		}
	}
	d.Fields = append(d.Fields, Field{Key: key, Value: rawJSON})
}

// AppendFields appends the fields as `"k1":v1,"k2":v2` (keys JSON-escaped,
// values raw), without braces, for the sink to splice into its document. An
// empty value is written as null.
func (d *Doc) AppendFields(dst []byte) []byte {
	for i, f := range d.Fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, f.Key)
		dst = append(dst, ':')
		if len(f.Value) == 0 {
			dst = append(dst, "null"...)
			continue
		}
		dst = append(dst, f.Value...)
	}
	return dst
}
