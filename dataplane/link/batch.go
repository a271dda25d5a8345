package link

// Batch collects the frames one worker will send on one interface, and owns
// scratch buffers for frames the worker builds itself (ARP, packets released
// from a neighbour queue, copies of engine-generated packets). A Batch
// belongs to one goroutine. When it fills up it hands its frames to Flush
// (the worker's send on its own socket) and starts over, so Add never fails.
type Batch struct {
	// Frames are the frames queued so far, in order.
	Frames [][]byte
	// Flush sends frames; called when the batch is full. After it returns,
	// the frames and any scratch buffers they used may be reused.
	Flush func(frames [][]byte)

	scratch [][]byte
	used    int
	bufSize int
}

// NewBatch makes a batch holding up to maxFrames frames and scratch buffers
// of bufSize bytes.
func NewBatch(maxFrames, scratchBufs, bufSize int, flush func([][]byte)) *Batch {
	if maxFrames < 1 {
		maxFrames = 1
	}
	if scratchBufs < 1 {
		scratchBufs = 1
	}
	b := &Batch{
		Frames:  make([][]byte, 0, maxFrames),
		Flush:   flush,
		scratch: make([][]byte, scratchBufs),
		bufSize: bufSize,
	}
	for i := range b.scratch {
		b.scratch[i] = make([]byte, bufSize)
	}
	return b
}

// Add appends a frame, flushing the queued frames first if the batch is
// full (scratch buffers stay taken until Reset).
func (b *Batch) Add(frame []byte) {
	if len(b.Frames) == cap(b.Frames) {
		b.flushFrames()
	}
	b.Frames = append(b.Frames, frame)
}

// Buffer returns a scratch buffer of length n, valid until the batch is
// Reset; nil if n exceeds the buffer size. A buffer must be added (or
// abandoned) before the next call: when all scratch buffers are taken, the
// queued frames are flushed and the buffers reused.
func (b *Batch) Buffer(n int) []byte {
	if n > b.bufSize {
		return nil
	}
	if b.used == len(b.scratch) {
		b.flushFrames()
		b.used = 0
	}
	buf := b.scratch[b.used][:n]
	b.used++
	return buf
}

// BufSize is the size of each scratch buffer.
func (b *Batch) BufSize() int { return b.bufSize }

// Len is the number of frames queued.
func (b *Batch) Len() int { return len(b.Frames) }

// Reset forgets the queued frames and frees the scratch buffers; call it
// after sending Frames.
func (b *Batch) Reset() {
	clear(b.Frames) // drop references into RX rings
	b.Frames = b.Frames[:0]
	b.used = 0
}

func (b *Batch) flushFrames() {
	if b.Flush != nil && len(b.Frames) > 0 {
		b.Flush(b.Frames)
	}
	clear(b.Frames)
	b.Frames = b.Frames[:0]
}
