// tlogcheck: caveat's audit log checked by code caveat did not write.
//
// Go's golang.org/x/mod/sumdb/note verifies caveat's checkpoints with the
// verifier key `caveat audit key` prints, and sumdb/tlog checks the
// inclusion proofs of `caveat audit prove` (c2sp.org/tlog-proof@v1) and the
// consistency proofs of `caveat audit consistency`, and computes every
// tree's root on its own. The log (audit_fixture) has 300 leaves, past the
// 256 leaves of a tlog tile, and a checkpoint after each: every tree size
// from 1 to 300 is checked, its root, inclusion proofs in it and a
// consistency proof to it; and tampered proofs, roots, signatures and
// indexes must fail.
// Size 0 is not checked: x/mod's empty tree hash is zeros, RFC 6962's the
// hash of nothing.
//
// usage: tlogcheck CAVEAT AUDIT_FIXTURE SCRATCH_DIR
//
//	tlogcheck receipts VERIFIER-KEY FILE...
//
// The second form checks receipts (`caveat subscribe --receipts`): each a
// tlog-proof whose extra data is the leaf, whose checkpoint the key signed
// and whose proof puts the leaf at its index; and each with a hash of its
// proof changed must fail.
package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const maxSize = 300

type checker struct {
	caveat, fixture, dir string
	verifier             note.Verifier
	leaves               [][]byte
	stored               []tlog.Hash // tlog's own stored hashes of the leaves
	trees                map[int64]tlog.Tree
	failures             int
}

func (c *checker) fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	c.failures++
	if c.failures > 20 {
		os.Exit(1)
	}
}

func run(name string, args ...string) []byte {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		msg := ""
		if exit, ok := err.(*exec.ExitError); ok {
			msg = string(exit.Stderr)
		}
		fmt.Fprintf(os.Stderr, "tlogcheck: %s %s: %v %s\n", name, strings.Join(args, " "), err, msg)
		os.Exit(1)
	}
	return out
}

func (c *checker) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			out[i] = c.stored[x]
		}
		return out, nil
	})
}

// makeLog has audit_fixture write the log, and keeps its leaves and
// tlog's stored hashes of them.
func (c *checker) makeLog() {
	out := run(c.fixture, c.dir, fmt.Sprint(maxSize), "1")
	for _, leaf := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
		hashes, err := tlog.StoredHashes(int64(len(c.leaves)), leaf, c.reader())
		if err != nil {
			fmt.Fprintf(os.Stderr, "tlogcheck: %v\n", err)
			os.Exit(1)
		}
		c.leaves = append(c.leaves, leaf)
		c.stored = append(c.stored, hashes...)
	}
	if len(c.leaves) != maxSize {
		fmt.Fprintf(os.Stderr, "tlogcheck: audit_fixture wrote %d leaves\n", len(c.leaves))
		os.Exit(1)
	}
}

// tree reads a signed checkpoint with x/mod's note reader.
func (c *checker) tree(signed []byte) (tlog.Tree, error) {
	n, err := note.Open(signed, note.VerifierList(c.verifier))
	if err != nil {
		return tlog.Tree{}, err
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != c.verifier.Name() {
		return tlog.Tree{}, fmt.Errorf("not a checkpoint of %s: %q", c.verifier.Name(), n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return tlog.Tree{}, err
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return tlog.Tree{}, fmt.Errorf("bad root %q", lines[2])
	}
	var tree tlog.Tree
	tree.N = size
	copy(tree.Hash[:], root)
	return tree, nil
}

// parseHashes reads base64 hashes, one a line, up to a blank line or the end.
func parseHashes(lines []string) ([]tlog.Hash, int, error) {
	var hashes []tlog.Hash
	i := 0
	for ; i < len(lines) && lines[i] != ""; i++ {
		h, err := base64.StdEncoding.DecodeString(lines[i])
		if err != nil || len(h) != tlog.HashSize {
			return nil, i, fmt.Errorf("not a hash: %q", lines[i])
		}
		var hash tlog.Hash
		copy(hash[:], h)
		hashes = append(hashes, hash)
	}
	return hashes, i, nil
}

// proof is a c2sp.org/tlog-proof@v1 file read.
type proof struct {
	extra  []byte // the extra line's data, when there is one
	index  int64
	hashes tlog.RecordProof
	signed []byte
}

func parseProof(text []byte) (proof, error) {
	var p proof
	head, signed, found := bytes.Cut(text, []byte("\n\n"))
	if !found {
		return p, fmt.Errorf("no blank line")
	}
	p.signed = signed
	lines := strings.Split(string(head), "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		return p, fmt.Errorf("first line %q", lines[0])
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		extra, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[0], "extra "))
		if err != nil {
			return p, fmt.Errorf("extra line: %v", err)
		}
		p.extra = extra
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return p, fmt.Errorf("no index line")
	}
	index, err := strconv.ParseInt(strings.TrimPrefix(lines[0], "index "), 10, 64)
	if err != nil {
		return p, err
	}
	p.index = index
	hashes, _, err := parseHashes(lines[1:])
	p.hashes = hashes
	return p, err
}

func flip(h tlog.Hash) tlog.Hash {
	h[5] ^= 0x20
	return h
}

// checkInclusion: caveat's proof of index in the checkpoint of size (0:
// the latest) holds for tlog, and fails for tlog when anything in it is
// changed.
func (c *checker) checkInclusion(index, size int64) {
	args := []string{"audit", "prove", c.dir, "--index", fmt.Sprint(index)}
	if size == 0 {
		size = int64(len(c.leaves))
	} else {
		args = append(args, "--checkpoint", fmt.Sprint(size))
	}
	p, err := parseProof(run(c.caveat, args...))
	if err != nil {
		c.fail("prove %d: %v", index, err)
		return
	}
	tree, err := c.tree(p.signed)
	if err != nil {
		c.fail("prove %d: checkpoint: %v", index, err)
		return
	}
	leaf := tlog.RecordHash(c.leaves[index])
	if p.index != index || tree.N != size {
		c.fail("prove %d: index %d in tree %d", index, p.index, tree.N)
	}
	if err := tlog.CheckRecord(p.hashes, tree.N, tree.Hash, index, leaf); err != nil {
		c.fail("prove %d in %d: tlog.CheckRecord: %v", index, tree.N, err)
	}
	for i := range p.hashes {
		bad := append(tlog.RecordProof(nil), p.hashes...)
		bad[i] = flip(bad[i])
		if tlog.CheckRecord(bad, tree.N, tree.Hash, index, leaf) == nil {
			c.fail("prove %d in %d: hash %d changed, still verifies", index, tree.N, i)
		}
	}
	if tree.N > 1 {
		other := (index + 1) % tree.N
		if tlog.CheckRecord(p.hashes, tree.N, tree.Hash, other, leaf) == nil {
			c.fail("prove %d in %d: verifies as index %d", index, tree.N, other)
		}
	}
	if tlog.CheckRecord(p.hashes, tree.N, tree.Hash, index, tlog.RecordHash([]byte("forged"))) == nil {
		c.fail("prove %d in %d: verifies another leaf", index, tree.N)
	}
	c.checkTampered(p.signed, tree)
}

// checkTampered: a checkpoint with another root, or with a signature
// changed, does not open.
func (c *checker) checkTampered(signed []byte, tree tlog.Tree) {
	root := base64.StdEncoding.EncodeToString(tree.Hash[:])
	changed := flip(tree.Hash)
	other := base64.StdEncoding.EncodeToString(changed[:])
	edited := bytes.Replace(signed, []byte(root), []byte(other), 1)
	if _, err := c.tree(edited); err == nil {
		c.fail("checkpoint %d: verifies with its root changed", tree.N)
	}
	sig := bytes.LastIndex(signed, []byte(" ")) + 10
	forged := append([]byte(nil), signed...)
	forged[sig] = 'A' // a base64 letter of the signature itself, after the key ID
	if signed[sig] == 'A' {
		forged[sig] = 'B'
	}
	if _, err := c.tree(forged); err == nil {
		c.fail("checkpoint %d: verifies with its signature changed", tree.N)
	}
}

// checkpoint: the stored checkpoint of size, as caveat gives it, once.
func (c *checker) checkpoint(size int64) tlog.Tree {
	if tree, ok := c.trees[size]; ok {
		return tree
	}
	tree, err := c.tree(run(c.caveat, "audit", "checkpoint", c.dir, "--size", fmt.Sprint(size)))
	if err != nil || tree.N != size {
		c.fail("checkpoint %d: %v (size %d)", size, err, tree.N)
	}
	c.trees[size] = tree
	return tree
}

// checkConsistency: caveat's proof from old to the latest checkpoint holds
// for tlog.CheckTree, and fails when a hash of it is changed.
func (c *checker) checkConsistency(old int64, latest tlog.Tree) {
	text := run(c.caveat, "audit", "consistency", c.dir, fmt.Sprint(old), fmt.Sprint(latest.N))
	lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
	if lines[0] != fmt.Sprintf("caveat/tlog-consistency@v1 %d %d", old, latest.N) {
		c.fail("consistency %d %d: header %q", old, latest.N, lines[0])
		return
	}
	hashes, _, err := parseHashes(lines[1:])
	if err != nil {
		c.fail("consistency %d %d: %v", old, latest.N, err)
		return
	}
	prior := c.checkpoint(old)
	if err := tlog.CheckTree(hashes, latest.N, latest.Hash, old, prior.Hash); err != nil {
		c.fail("consistency %d %d: tlog.CheckTree: %v", old, latest.N, err)
	}
	for i := range hashes {
		bad := append(tlog.TreeProof(nil), hashes...)
		bad[i] = flip(bad[i])
		if tlog.CheckTree(bad, latest.N, latest.Hash, old, prior.Hash) == nil {
			c.fail("consistency %d %d: hash %d changed, still verifies", old, latest.N, i)
		}
	}
}

// checkSize: the checkpoint of size n, an inclusion proof in it, and a
// consistency proof to it from an earlier size.
func (c *checker) checkSize(n int64) {
	latest := c.checkpoint(n)
	if want, err := tlog.TreeHash(n, c.reader()); err != nil || want != latest.Hash {
		c.fail("size %d: caveat's root %v, tlog's %v (%v)", n, latest.Hash, want, err)
	}
	index := (n*7919 + 13) % n
	if n%2 == 1 {
		index = n - 1 // the right edge, where the proof is shortest
	}
	c.checkInclusion(index, n)
	c.checkConsistency((n*104729+7)%n+1, latest)
}

// checkReceipts: each file's leaf (its extra data) is at its index in
// its checkpoint, for x/mod, and not once a proof hash is changed.
func checkReceipts(key string, files []string) {
	verifier, err := note.NewVerifier(key)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlogcheck: note.NewVerifier(%q): %v\n", key, err)
		os.Exit(1)
	}
	c := &checker{verifier: verifier}
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			c.fail("%v", err)
			continue
		}
		p, err := parseProof(text)
		if err == nil && p.extra == nil {
			err = fmt.Errorf("no extra line: no leaf")
		}
		if err != nil {
			c.fail("%s: %v", file, err)
			continue
		}
		tree, err := c.tree(p.signed)
		if err != nil {
			c.fail("%s: checkpoint: %v", file, err)
			continue
		}
		leaf := tlog.RecordHash(p.extra)
		if err := tlog.CheckRecord(p.hashes, tree.N, tree.Hash, p.index, leaf); err != nil {
			c.fail("%s: tlog.CheckRecord: %v", file, err)
		}
		for i := range p.hashes {
			bad := append(tlog.RecordProof(nil), p.hashes...)
			bad[i] = flip(bad[i])
			if tlog.CheckRecord(bad, tree.N, tree.Hash, p.index, leaf) == nil {
				c.fail("%s: hash %d changed, and tlog still takes it", file, i)
			}
		}
	}
	if c.failures > 0 || len(files) == 0 {
		fmt.Fprintf(os.Stderr, "%d failure(s) in %d receipts\n", c.failures, len(files))
		os.Exit(1)
	}
	fmt.Printf("tlogcheck: %d receipts verify with golang.org/x/mod\n", len(files))
}

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "receipts" {
		checkReceipts(os.Args[2], os.Args[3:])
		return
	}
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: tlogcheck CAVEAT AUDIT_FIXTURE SCRATCH_DIR")
		os.Exit(2)
	}
	c := &checker{caveat: os.Args[1], fixture: os.Args[2], dir: os.Args[3] + "/data",
		trees: map[int64]tlog.Tree{}}
	c.makeLog()
	key := strings.TrimSpace(string(run(c.caveat, "audit", "key", c.dir)))
	verifier, err := note.NewVerifier(key)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlogcheck: note.NewVerifier(%q): %v\n", key, err)
		os.Exit(1)
	}
	c.verifier = verifier
	for n := int64(1); n <= maxSize; n++ {
		c.checkSize(n)
	}
	c.checkInclusion(0, 0) // in the latest checkpoint, as prove gives by default
	if c.failures > 0 {
		fmt.Fprintf(os.Stderr, "%d failure(s)\n", c.failures)
		os.Exit(1)
	}
	fmt.Printf("tlogcheck: sizes 1 to %d: caveat's checkpoints, inclusion and consistency proofs"+
		" verify with golang.org/x/mod, and tampered ones do not\n", maxSize)
}
