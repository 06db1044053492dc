/* viridian: the legacy network adapter boot ROM (see viridian/qemu/netboot.py for what it
 * does, how it is built and the boot protocol it follows). */
	.code16
	.text
	.globl	_start
_start:
	.byte	0x55, 0xaa
	.byte	0			/* size in 512-byte blocks: set by the builder */
	jmp	init
	.org	0x18
	.word	pcir
	.word	pnp

	.balign	4, 0
pcir:	.ascii	"PCIR"
	.word	0			/* vendor: builder */
	.word	0			/* device: builder */
	.word	0			/* vital product data */
	.word	0x18			/* structure length */
	.byte	0			/* structure revision */
	.byte	0, 0, 2			/* class code: Ethernet controller */
	.word	0			/* image length in 512-byte blocks: builder */
	.word	1			/* code revision */
	.byte	0			/* code type: x86 PC-AT */
	.byte	0x80			/* last image */
	.word	0

	.balign	16, 0
pnp:	.ascii	"$PnP"
	.byte	1			/* revision */
	.byte	2			/* length in 16-byte units */
	.word	0			/* next header */
	.byte	0
	.byte	0			/* checksum: builder */
	.long	0			/* device identifier */
	.word	manufacturer
	.word	product
	.byte	2, 0, 0			/* device type: network */
	.byte	0x14			/* indicators: IPL device, may be shadowed */
	.word	0			/* boot connection vector */
	.word	0			/* disconnect vector */
	.word	bev			/* bootstrap entry vector */
	.word	0
	.word	0			/* static resource information */

manufacturer:	.asciz	"viridian"
product:	.asciz	"Legacy Network Adapter (iPXE)"
kernel_name:	.asciz	"opt/org.viridian/ipxe.lkrn"
	.org	kernel_name + 56
cmdline_name:	.asciz	"opt/org.viridian/ipxe.cmdline"
	.org	cmdline_name + 56

	.equ	FW_CFG_SELECT, 0x510
	.equ	FW_CFG_DATA, 0x511
	.equ	FW_CFG_DMA_HI, 0x514
	.equ	FW_CFG_DMA_LO, 0x518
	.equ	FW_CFG_ID, 0x01
	.equ	FW_CFG_FILE_DIR, 0x19
	.equ	SETUP_SEG, 0x1000	/* real-mode part at 0x10000 */
	.equ	HEAP_END, 0xe000	/* stack top; command line at SETUP_SEG:HEAP_END */
	.equ	DMA_STRUCT, 0xf000	/* FWCfgDmaAccess at SETUP_SEG:DMA_STRUCT */
	.equ	KERNEL_HIGH, 0x100000	/* protected-mode part */

init:
	lret

/* Bootstrap entry vector: load the kernel from fw_cfg, boot it; return = boot failed. */
bev:
	cld
	pushw	%cs
	popw	%ds
	/* fw_cfg DMA is needed for the part above 1 MiB (feature bit 1 of FW_CFG_ID). */
	movw	$FW_CFG_ID, %ax
	call	select
	inb	%dx, %al
	testb	$0x02, %al
	jz	fail
	movw	$kernel_name, %si
	call	find_file
	jc	fail
	movl	%eax, %esi		/* kernel size */
	movw	%bx, %ax
	call	select
	movw	$SETUP_SEG, %ax
	movw	%ax, %es
	xorw	%di, %di
	movw	$512, %cx
	rep insb
	movzbl	%es:0x1f1, %ecx		/* setup_sects (0 means 4) */
	testw	%cx, %cx
	jnz	1f
	movw	$4, %cx
1:	shlw	$9, %cx			/* bytes after the boot sector */
	subl	%ecx, %esi
	subl	$512, %esi		/* esi = protected-mode part */
	jbe	fail
	rep insb
	cmpl	$0x53726448, %es:0x202	/* "HdrS": a kernel with a boot protocol header */
	jne	fail
	/* The rest straight to KERNEL_HIGH through fw_cfg DMA, from the current offset. */
	movl	$0x02000000, %es:DMA_STRUCT	/* control: read (big-endian 2) */
	movl	%esi, %eax
	bswapl	%eax
	movl	%eax, %es:DMA_STRUCT + 4	/* length */
	movl	$0, %es:DMA_STRUCT + 8		/* address, high half */
	movl	$(((KERNEL_HIGH >> 24) & 0xff) | ((KERNEL_HIGH >> 8) & 0xff00) | ((KERNEL_HIGH << 8) & 0xff0000) | ((KERNEL_HIGH << 24) & 0xff000000)), %es:DMA_STRUCT + 12
	xorl	%eax, %eax
	movw	$FW_CFG_DMA_HI, %dx
	outl	%eax, %dx
	movl	$(SETUP_SEG * 16 + DMA_STRUCT), %eax
	bswapl	%eax
	movw	$FW_CFG_DMA_LO, %dx
	outl	%eax, %dx
2:	movl	%es:DMA_STRUCT, %eax
	testl	$0x01000000, %eax	/* error bit */
	jnz	fail
	testl	%eax, %eax
	jnz	2b
	/* Boot protocol fields (Documentation/x86/boot.rst, "Loading the rest"). */
	movb	$0xff, %es:0x210		/* type_of_loader: undefined */
	orb	$0x80, %es:0x211		/* loadflags: CAN_USE_HEAP */
	movw	$(HEAP_END - 0x200), %es:0x224	/* heap_end_ptr */
	movl	$0, %es:0x228			/* cmd_line_ptr: none yet */
	movw	$cmdline_name, %si
	call	find_file
	jc	3f
	cmpl	$2047, %eax
	ja	3f
	movw	%ax, %cx
	movw	%bx, %ax
	call	select
	movw	$HEAP_END, %di
	rep insb
	movb	$0, %es:(%di)
	movl	$(SETUP_SEG * 16 + HEAP_END), %es:0x228
3:	cli
	movw	%es, %ax
	movw	%ax, %ds
	movw	%ax, %fs
	movw	%ax, %gs
	movw	%ax, %ss
	movw	$HEAP_END, %sp
	ljmp	$(SETUP_SEG + 0x20), $0
fail:
	lret

/* Select fw_cfg item %ax; leaves %dx = FW_CFG_DATA. */
select:
	movw	$FW_CFG_SELECT, %dx
	outw	%ax, %dx
	incw	%dx
	ret

/* Big-endian 32-bit read from fw_cfg data into %eax (%dx = FW_CFG_DATA). */
read_be32:
	movw	$4, %cx
1:	shll	$8, %eax
	inb	%dx, %al
	loop	1b
	ret

/* Find fw_cfg file named at %ds:%si (56 bytes, zero padded): %bx = selector, %eax = size,
 * CF clear; CF set when no such file. */
find_file:
	movw	$FW_CFG_FILE_DIR, %ax
	call	select
	call	read_be32
	movl	%eax, %ebp		/* entries */
4:	testl	%ebp, %ebp
	jz	6f
	decl	%ebp
	call	read_be32
	movl	%eax, %edi		/* size */
	inb	%dx, %al
	movb	%al, %bh
	inb	%dx, %al
	movb	%al, %bl		/* selector */
	inb	%dx, %al
	inb	%dx, %al		/* reserved */
	pushw	%si
	movw	$56, %cx
	xorb	%ah, %ah
5:	inb	%dx, %al
	cmpb	(%si), %al
	je	7f
	movb	$1, %ah
7:	incw	%si
	loop	5b
	popw	%si
	testb	%ah, %ah
	jnz	4b
	movl	%edi, %eax
	clc
	ret
6:	stc
	ret
