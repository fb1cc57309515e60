.code16
.globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %sp
    mov $0x1000, %di
    mov $0x3000, %cx
    xor %eax, %eax
    rep stosb
    movl $0x2003, 0x1000
    movl $0x3003, 0x2000
    # PD: 64 entries of 2 MiB = 128 MiB identity-mapped
    mov $0x3000, %di
    mov $0x83, %eax
    mov $64, %cx
1:  mov %eax, (%di)
    add $0x200000, %eax
    add $8, %di
    loop 1b
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $0x1000, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    lgdt gdtr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    ljmp $0x08, $long_mode
.code64
long_mode:
    # touch every 4 KiB page from 16 MiB to 112 MiB
    mov $0x1000000, %rdi
2:  movq $1, (%rdi)
    add $0x1000, %rdi
    cmp $0x7000000, %rdi
    jb 2b
    mov $0x2a, %al
    out %al, $0xf4
    hlt
.p2align 3
gdt:
    .quad 0
    .quad 0x00209A0000000000
gdtr:
    .word gdtr - gdt - 1
    .long gdt
.org 510
.word 0xAA55
